package neti

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/model/vae"
	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/vk"
)

// NewConcept initialises a mapper as NeTI does (neti.md §1): a random
// Fourier matrix, the input layer set to the encodings of the 10x16 anchor
// grid, PyTorch's default uniform init elsewhere, LayerNorms at identity,
// and the output norm scale taken from the init token's embedding.
func NewConcept(b *sd.Model, token, initToken string, rng *rand.Rand) (*plugin.Concept, error) {
	// A token added earlier (by another concept of this session) is fine;
	// one of the model's own vocabulary is not: its meaning would clash.
	if id, ok := b.Tokenizer.ID(token); ok && id < b.Text.Vocab {
		return nil, fmt.Errorf("neti: token %q is already in the vocabulary; choose another trigger (e.g. <%s>)", token, strings.Trim(token, "<>"))
	}
	ids := b.Tokenizer.Encode(initToken)
	if len(ids) != 1 {
		return nil, fmt.Errorf("neti: init token %q must be one token, it is %d (%v)", initToken, len(ids), b.Tokenizer.Tokens(initToken))
	}
	emb, err := tokenEmbedding(b, ids[0])
	if err != nil {
		return nil, err
	}
	var n2 float64
	for _, v := range emb {
		n2 += float64(v) * float64(v)
	}
	a := plugin.DefaultArch(b.Text.Hidden)
	c := &plugin.Concept{
		Kind: plugin.KindNeTI, Token: token, SuperCategory: initToken,
		NormScale: math.Sqrt(n2), BypassAlpha: plugin.DefaultBypassAlpha, Arch: a,
		Fourier: plugin.Fourier{SigmaT: plugin.DefaultSigmaT, SigmaL: plugin.DefaultSigmaL, NumW: plugin.DefaultNumW},
		Weights: &plugin.MapperWeights{},
	}
	w := make([]float32, 2*c.Fourier.NumW)
	for i := range w {
		s := c.Fourier.SigmaT
		if i%2 == 1 {
			s = c.Fourier.SigmaL
		}
		w[i] = float32(rng.NormFloat64() * s)
	}
	c.Fourier.W = w
	uniform := func(n int, bound float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
		return v
	}
	fill := func(v float32, n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	lin := func(wt, bt *plugin.Tensor, out, in int) {
		bound := 1 / math.Sqrt(float64(in))
		*wt = plugin.Tensor{Shape: []int{out, in}, Data: uniform(out*in, bound)}
		*bt = plugin.Tensor{Shape: []int{out}, Data: uniform(out, bound)}
	}
	mw := c.Weights
	lin(&mw.InputW, &mw.InputB, a.InputWidth, 2*c.Fourier.NumW)
	mw.InputW.Data = plugin.AnchorInit(w, c.Fourier.NumW, a.Anchors, a.Layers)
	lin(&mw.Lin1W, &mw.Lin1B, a.Hidden, a.InputWidth)
	lin(&mw.Lin2W, &mw.Lin2B, a.Hidden, a.Hidden)
	lin(&mw.OutW, &mw.OutB, a.OutputWidth(), a.Hidden)
	mw.LN1W = plugin.Tensor{Shape: []int{a.Hidden}, Data: fill(1, a.Hidden)}
	mw.LN1B = plugin.Tensor{Shape: []int{a.Hidden}, Data: fill(0, a.Hidden)}
	mw.LN2W = plugin.Tensor{Shape: []int{a.Hidden}, Data: fill(1, a.Hidden)}
	mw.LN2B = plugin.Tensor{Shape: []int{a.Hidden}, Data: fill(0, a.Hidden)}
	if c.Base, err = b.Fingerprint(); err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// TrainOptions are NeTI's training settings (neti.md §5).
type TrainOptions struct {
	Batch, Accum int
	LR           float64 // base rate; the applied rate is LR*Batch*Accum, as NeTI scales it
	Templates    []string
	Seed         uint64
	// DropoutProb is the probability of nested dropout per mapper call (0.5).
	DropoutProb float64
	// Checkpointing says when the step recomputes the activations of UNet
	// blocks and CLIP layers in the backward instead of keeping them.
	Checkpointing Checkpointing
	// MemoryBudget is the device memory, in bytes, that CheckpointAuto
	// compares the planned peak with (0: the device's budget, see
	// sd.DeviceLimits).
	MemoryBudget int64
}

// Checkpointing is the activation checkpointing mode of a training step.
type Checkpointing int

const (
	// CheckpointAuto recomputes only when the plan without recomputation
	// exceeds the memory budget: recomputation costs about one more
	// forward pass per step.
	CheckpointAuto Checkpointing = iota
	// CheckpointOn always recomputes.
	CheckpointOn
	// CheckpointOff never recomputes.
	CheckpointOff
)

var checkpointingNames = []string{"auto", "on", "off"}

func (c Checkpointing) String() string {
	if c < 0 || int(c) >= len(checkpointingNames) {
		return fmt.Sprintf("Checkpointing(%d)", int(c))
	}
	return checkpointingNames[c]
}

// ParseCheckpointing reads "auto", "on" or "off".
func ParseCheckpointing(s string) (Checkpointing, error) {
	for i, n := range checkpointingNames {
		if s == n {
			return Checkpointing(i), nil
		}
	}
	return 0, fmt.Errorf("neti: checkpointing must be auto, on or off, not %q", s)
}

// Trainer runs NeTI training steps on a device.
type Trainer struct {
	base    *sd.Model
	tables  scheduler.Tables
	concept *plugin.Concept
	opts    TrainOptions
	shape   StepShape
	prog    *graph.Program
	rng     *rand.Rand
	latents []latentDist // per image, then per flipped image
	order   []int
	next    int
	step    int // optimizer steps done
	tokenID int
	lr      float64
	started time.Time
	// checkpointing: the step recomputes segment activations.
	checkpointing bool
}

type latentDist struct{ mean, std []float32 }

// NewTrainer encodes the images (each and its mirror image once, as
// latent distributions sampled at every step), builds and compiles the
// training step and restores the optimizer state if the concept has one.
func NewTrainer(dev *vk.Device, b *sd.Model, c *plugin.Concept, images [][]float32, res int, o TrainOptions) (*Trainer, error) {
	if o.Batch <= 0 || o.Accum <= 0 || o.LR <= 0 || len(o.Templates) == 0 {
		return nil, fmt.Errorf("neti: train: batch %d, accumulation %d, lr %g, %d templates", o.Batch, o.Accum, o.LR, len(o.Templates))
	}
	f := b.VAE.Factor()
	if res%f != 0 || res/f < 1 {
		return nil, fmt.Errorf("neti: train: resolution %d is not a multiple of %d", res, f)
	}
	tab, err := tables(b)
	if err != nil {
		return nil, err
	}
	t := &Trainer{base: b, tables: tab, concept: c, opts: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), lr: o.LR * float64(o.Batch*o.Accum)}
	if c.Optimizer != nil {
		t.step = c.Optimizer.Step
	}
	tok := b.Tokenizer
	id, err := tok.AddToken(c.Token)
	if err != nil {
		if existing, ok := tok.ID(c.Token); ok {
			id = existing
		} else {
			return nil, err
		}
	}
	t.tokenID = id
	if err := t.encodeImages(dev, images, res); err != nil {
		return nil, err
	}
	g, shape, plan, err := chooseStep(b, c, res, o, sd.DeviceLimits(dev.Info()))
	if err != nil {
		return nil, err
	}
	t.shape, t.checkpointing = shape, plan.Checkpointing
	if t.prog, err = graph.Compile(dev, g, frozenWeights(b), t.base.TrainingOptions()); err != nil {
		return nil, fmt.Errorf("neti: train: %w", err)
	}
	for _, nt := range c.Weights.Named() {
		n := nt.Tensor.Numel()
		m, v := make([]float32, n), make([]float32, n)
		if c.Optimizer != nil && len(c.Optimizer.M[nt.Name]) == n && len(c.Optimizer.V[nt.Name]) == n {
			m, v = c.Optimizer.M[nt.Name], c.Optimizer.V[nt.Name]
		}
		for name, val := range map[string][]float32{"param.": nt.Tensor.Data, "m.": m, "v.": v, "acc.": make([]float32, n)} {
			if err := t.prog.SetInput(name+nt.Name, val); err != nil {
				t.Close()
				return nil, err
			}
		}
	}
	t.started = time.Now()
	return t, nil
}

func stepGraph(b *sd.Model, c *plugin.Concept, res int, o TrainOptions, checkpointing bool) (*graph.Graph, StepShape, error) {
	f := b.VAE.Factor()
	shape := StepShape{Batch: o.Batch, Seq: b.Tokenizer.MaxLength(), LatentC: b.VAE.LatentChannels, LatentH: res / f, LatentW: res / f,
		Layers: b.UNet.CrossAttentionLayers(), TextHidden: b.Text.Hidden, MapperHidden: c.Arch.Hidden}
	gb := graph.NewBuilder()
	gb.SetCheckpointing(checkpointing)
	st, err := BuildStep(gb, c, b.Text, b.UNet, shape, DefaultOptimizer(o.Accum))
	if err != nil {
		return nil, shape, err
	}
	gb.Output("loss", st.Loss)
	g, err := gb.Build()
	return g, shape, err
}

// TrainPlan is the memory plan of a training step: the planned peaks with
// and without activation checkpointing and the choice the trainer makes.
type TrainPlan struct {
	Without, With graph.Stats
	// Budget is the device memory auto mode compares with (0: none known).
	Budget int64
	// Checkpointing: the trainer recomputes activations (forced by the
	// options, or auto and Without exceeds Budget).
	Checkpointing bool
}

// Chosen is the plan of the step the trainer runs.
func (p TrainPlan) Chosen() graph.Stats {
	if p.Checkpointing {
		return p.With
	}
	return p.Without
}

// budget is the memory auto mode plans for: the explicit budget, else the
// device's.
func (o TrainOptions) budget(l sd.Limits) int64 {
	if o.MemoryBudget > 0 {
		return o.MemoryBudget
	}
	return l.Budget
}

// recompute decides checkpointing from the plan without it.
func (o TrainOptions) recompute(without graph.Stats, budget int64) bool {
	switch o.Checkpointing {
	case CheckpointOn:
		return true
	case CheckpointOff:
		return false
	}
	return budget > 0 && without.PeakBytes() > budget
}

// PlanTraining is the memory plan of the training step for a device's
// limits, with and without checkpointing, computed without allocating
// anything (neti train --dry-run).
func PlanTraining(b *sd.Model, c *plugin.Concept, res int, o TrainOptions, l sd.Limits) (TrainPlan, error) {
	p := TrainPlan{Budget: o.budget(l)}
	for _, on := range []bool{false, true} {
		g, _, err := stepGraph(b, c, res, o, on)
		if err != nil {
			return TrainPlan{}, err
		}
		st, err := graph.Plan(g, l.Limits, b.TrainingOptions())
		if err != nil {
			return TrainPlan{}, fmt.Errorf("neti: plan training step (checkpointing %v): %w", on, err)
		}
		if on {
			p.With = st
		} else {
			p.Without = st
		}
	}
	p.Checkpointing = o.recompute(p.Without, p.Budget)
	return p, nil
}

// chooseStep builds the step graph the trainer compiles, planning only
// what the choice needs: in auto mode the step without checkpointing, and
// the one with it only when the first exceeds the budget. The plan's
// stats are those that were computed.
func chooseStep(b *sd.Model, c *plugin.Concept, res int, o TrainOptions, l sd.Limits) (*graph.Graph, StepShape, TrainPlan, error) {
	p := TrainPlan{Budget: o.budget(l), Checkpointing: o.Checkpointing == CheckpointOn}
	g, shape, err := stepGraph(b, c, res, o, p.Checkpointing)
	if err != nil || o.Checkpointing != CheckpointAuto {
		return g, shape, p, err
	}
	if p.Without, err = graph.Plan(g, l.Limits, b.TrainingOptions()); err != nil {
		return nil, shape, p, fmt.Errorf("neti: plan training step: %w", err)
	}
	if !o.recompute(p.Without, p.Budget) {
		return g, shape, p, nil
	}
	p.Checkpointing = true
	g, shape, err = stepGraph(b, c, res, o, true)
	return g, shape, p, err
}

// PeakBytes is the training program's planned peak device memory.
func (t *Trainer) PeakBytes() int64 { return t.prog.Stats().PeakBytes() }

// Checkpointing says whether the training step recomputes activations.
func (t *Trainer) Checkpointing() bool { return t.checkpointing }

func (t *Trainer) encodeImages(dev *vk.Device, images [][]float32, res int) error {
	b := graph.NewBuilder()
	mom := vae.Encode(b, t.base.VAE, b.Input("x", 1, 3, res, res), nil)
	b.Output("moments", mom)
	g, err := b.Build()
	if err != nil {
		return err
	}
	p, err := graph.Compile(dev, g, t.base.VAEWeights(), t.base.TrainingOptions())
	if err != nil {
		return fmt.Errorf("neti: train: VAE encoder: %w", err)
	}
	defer p.Close()
	var flipped []latentDist
	for _, img := range images {
		for k, x := range [][]float32{img, FlipPlanes(img, 3, res, res)} {
			if err := p.SetInput("x", x); err != nil {
				return err
			}
			if err := p.Run(); err != nil {
				return err
			}
			m, err := p.Output("moments")
			if err != nil {
				return err
			}
			half := len(m) / 2
			d := latentDist{mean: m[:half], std: make([]float32, half)}
			for i, lv := range m[half:] {
				d.std[i] = float32(math.Exp(0.5 * math.Min(math.Max(float64(lv), -30), 20)))
			}
			if k == 0 {
				t.latents = append(t.latents, d)
			} else {
				flipped = append(flipped, d)
			}
		}
	}
	t.latents = append(t.latents, flipped...)
	return nil
}

// pick draws the next image like a shuffled data loader: every image once
// per epoch, flipped with probability 1/2. Evaluation draws freely.
func (t *Trainer) pick(rng *rand.Rand, epoch bool) latentDist {
	n := len(t.latents) / 2
	var i int
	if epoch {
		if t.next >= len(t.order) {
			t.order = rng.Perm(n)
			t.next = 0
		}
		i = t.order[t.next]
		t.next++
	} else {
		i = rng.IntN(n)
	}
	if rng.Float64() < 0.5 {
		i += n
	}
	return t.latents[i]
}

// Step runs one optimizer step (Accum micro-batches) and returns its mean
// loss.
func (t *Trainer) Step() (float64, error) {
	var total float64
	for micro := 0; micro < t.opts.Accum; micro++ {
		apply := micro == t.opts.Accum-1
		step := float64(t.step + 1)
		opt := []float32{b2f(apply), float32(t.lr), float32(1 / (1 - math.Pow(0.9, step))), float32(1 / (1 - math.Pow(0.999, step))), 1}
		loss, err := t.run(t.prepare(t.rng, true, t.opts.DropoutProb), opt)
		if err != nil {
			return 0, fmt.Errorf("neti: train step %d: %w", t.step+1, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, fmt.Errorf("neti: train step %d: the loss is %v (diverged; try a lower --lr)", t.step+1, loss)
		}
		total += loss
	}
	t.step++
	return total / float64(t.opts.Accum), nil
}

// EvalLoss is the mean loss over batches micro-batches drawn from seed
// (fixed images, flips, timesteps, noise and captions; no dropout), without
// changing the parameters or the optimizer state: the same seed gives a
// comparable number before and after training.
func (t *Trainer) EvalLoss(seed uint64, batches int) (float64, error) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var total float64
	for k := 0; k < batches; k++ {
		loss, err := t.run(t.prepare(rng, false, 0), []float32{0, 0, 1, 1, 0})
		if err != nil {
			return 0, err
		}
		total += loss
	}
	return total / float64(batches), nil
}

func (t *Trainer) run(in map[string][]float32, opt []float32) (float64, error) {
	in["opt"] = opt
	for name, v := range in {
		if err := t.prog.SetInput(name, v); err != nil {
			return 0, err
		}
	}
	if err := t.prog.Run(); err != nil {
		return 0, err
	}
	l, err := t.prog.Output("loss")
	if err != nil {
		return 0, err
	}
	return float64(l[0]), nil
}

// prepare draws one micro-batch: latents sampled from the images' latent
// distributions, timesteps, noise, captions and nested-dropout masks.
func (t *Trainer) prepare(rng *rand.Rand, epoch bool, dropout float64) map[string][]float32 {
	s, B, L := t.shape, t.shape.Batch, t.shape.Layers
	lat := s.LatentC * s.LatentH * s.LatentW
	latents := make([]float32, 0, B*lat)
	noise := make([]float32, B*lat)
	sa, sb, ts := make([]float32, B), make([]float32, B), make([]float32, B)
	scale := float64(t.base.VAE.ScalingFactor)
	for bi := 0; bi < B; bi++ {
		d := t.pick(rng, epoch)
		for i := range d.mean {
			latents = append(latents, float32((float64(d.mean[i])+float64(d.std[i])*rng.NormFloat64())*scale))
		}
		tt := rng.IntN(len(t.tables.AlphasCumprod))
		acp := float64(t.tables.AlphasCumprod[tt])
		sa[bi], sb[bi], ts[bi] = float32(math.Sqrt(acp)), float32(math.Sqrt(1-acp)), float32(tt)
	}
	for i := range noise {
		noise[i] = float32(rng.NormFloat64())
	}
	ids := make([]float32, 0, L*B*s.Seq)
	mask := make([]float32, 0, L*B*s.Seq)
	rowIDs := make([][]int, B)
	for bi := range rowIDs {
		tpl := t.opts.Templates[rng.IntN(len(t.opts.Templates))]
		padded, _, _ := t.base.Tokenizer.EncodePadded(strings.ReplaceAll(tpl, "{}", t.concept.Token))
		rowIDs[bi] = padded
	}
	mt, ml := make([]float32, 0, L*B), make([]float32, 0, L*B)
	keep := make([]float32, 0, L*B*s.MapperHidden)
	for l := 0; l < L; l++ {
		// Nested dropout: per mapper call (layer), with probability p, each
		// item keeps only its first k ~ U{0..hidden-1} hidden units.
		drop := dropout > 0 && rng.Float64() < dropout
		for bi := 0; bi < B; bi++ {
			mt, ml = append(mt, ts[bi]), append(ml, float32(l))
			k := s.MapperHidden
			if drop {
				k = rng.IntN(s.MapperHidden)
			}
			for j := 0; j < s.MapperHidden; j++ {
				keep = append(keep, b2f(j < k))
			}
			for _, id := range rowIDs[bi] {
				if id == t.tokenID {
					ids, mask = append(ids, 0), append(mask, 1)
				} else {
					ids, mask = append(ids, float32(id)), append(mask, 0)
				}
			}
		}
	}
	return map[string][]float32{"latents": latents, "noise": noise, "sqrt_acp": sa, "sqrt_1m_acp": sb,
		"timesteps": ts, "map_t": mt, "map_l": ml, "keep": keep, "ids": ids, "mask": mask}
}

func b2f(v bool) float32 {
	if v {
		return 1
	}
	return 0
}

// Steps is the number of optimizer steps done (including resumed ones).
func (t *Trainer) Steps() int { return t.step }

// Snapshot returns the concept with the current parameters and optimizer
// state (for checkpoints and resume).
func (t *Trainer) Snapshot() (*plugin.Concept, error) {
	c := *t.concept
	w := *t.concept.Weights
	c.Weights = &w
	c.Optimizer = &plugin.OptimizerState{Step: t.step, M: map[string][]float32{}, V: map[string][]float32{}}
	for _, nt := range c.Weights.Named() {
		p, err := t.prog.Input("param." + nt.Name)
		if err != nil {
			return nil, err
		}
		*nt.Tensor = plugin.Tensor{Shape: nt.Tensor.Shape, Data: p}
		if c.Optimizer.M[nt.Name], err = t.prog.Input("m." + nt.Name); err != nil {
			return nil, err
		}
		if c.Optimizer.V[nt.Name], err = t.prog.Input("v." + nt.Name); err != nil {
			return nil, err
		}
	}
	c.Training.Steps = t.step
	c.Training.BatchSize = t.opts.Batch
	c.Training.GradAccum = t.opts.Accum
	c.Training.LearningRate = t.lr
	c.Training.NumImages = len(t.latents) / 2
	c.Training.NestedDropoutProb = t.opts.DropoutProb
	return &c, nil
}

// Close releases the device program.
func (t *Trainer) Close() error {
	if t.prog == nil {
		return nil
	}
	err := t.prog.Close()
	t.prog = nil
	return err
}
