package neti

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/vk"
)

// ConceptUse is one concept as a prompt uses it.
type ConceptUse struct {
	Concept *plugin.Concept
	// TokenID is the id the tokenizer gave the concept's trigger.
	TokenID int
	// Truncation keeps the first k hidden units of a NeTI mapper (nested
	// dropout at inference: smaller is coarser and more editable); < 0 or
	// >= 128 keeps all.
	Truncation int
	// Strength scales what the concept injects: the mapper's token
	// embedding (or a textual-inversion embedding) is multiplied by it and
	// the textual bypass's 0.2 becomes 0.2*Strength. 1 is the concept as
	// trained, 0 removes it (an all-zero embedding, no bypass).
	Strength float64
}

// Conditioner computes NeTI's conditioning of one prompt for every step of
// a sampling run: for each cross-attention layer, keys from the encoding
// with the mappers' token embeddings at their placeholders, values from the
// encoding with the textual bypass added before the final layer norm. The
// mappers of all concepts are evaluated for all (timestep, layer) pairs of
// the run in one dispatch per concept; each step is then one text-encoder
// run of batch `layers`.
//
// CLIP is causal and the mappers reach only placeholder positions, so the
// positions before the first placeholder are the same for every (timestep,
// layer): they are encoded once, batch 1, and each step encodes only the
// rest, attending to the prefix's keys and values kept on the device (neti.md
// §7, "causal-prefix reuse"; exact, not an approximation).
type Conditioner struct {
	m         *sd.Model
	text      *graph.Program
	layers    int
	seq, d    int
	prefix    int // positions encoded once (0: every step encodes all)
	timesteps []float64
	ids, mask []float32 // [layers, seq-prefix]
	uses      []usePositions
}

// ConditionerOptions tune a Conditioner.
type ConditionerOptions struct {
	// FullRecompute encodes every position at every step, as NeTI does,
	// instead of the positions before the first placeholder once (the
	// reference the reuse is tested and benchmarked against).
	FullRecompute bool
}

type usePositions struct {
	ConceptUse
	pos    []int       // token positions of this concept
	mapped [][]float32 // [step*layers + layer] -> 2D mapper output (NeTI concepts)
}

// NewConditioner prepares the conditioning of a tokenized prompt (ids
// padded to the model's length, with each concept's TokenID at its
// positions; textual-inversion concepts with N vectors occupy N
// consecutive positions) for the given sampler timesteps.
func NewConditioner(dev *vk.Device, m *sd.Model, ids []int, uses []ConceptUse, timesteps []float64) (*Conditioner, error) {
	return NewConditionerWith(dev, m, ids, uses, timesteps, ConditionerOptions{})
}

// NewConditionerWith is NewConditioner with options.
func NewConditionerWith(dev *vk.Device, m *sd.Model, ids []int, uses []ConceptUse, timesteps []float64, o ConditionerOptions) (*Conditioner, error) {
	L := m.UNet.CrossAttentionLayers()
	c := &Conditioner{m: m, layers: L, seq: len(ids), d: m.Text.Hidden, timesteps: timesteps}
	placeholder := map[int]bool{}
	for _, u := range uses {
		if err := checkConcept(m, u.Concept); err != nil {
			return nil, err
		}
		up := usePositions{ConceptUse: u}
		for i, id := range ids {
			if id == u.TokenID {
				up.pos = append(up.pos, i)
			}
		}
		if len(up.pos) == 0 {
			return nil, fmt.Errorf("neti: concept %s is not in the prompt", u.Concept.Token)
		}
		if u.Concept.Kind == plugin.KindEmbedding && len(up.pos)%u.Concept.Embedding.Shape[0] != 0 {
			return nil, fmt.Errorf("neti: embedding %s has %d vectors but %d positions", u.Concept.Token, u.Concept.Embedding.Shape[0], len(up.pos))
		}
		placeholder[u.TokenID] = true
		c.uses = append(c.uses, up)
	}
	if !o.FullRecompute {
		c.prefix = firstPlaceholder(c.uses)
	}
	for l := 0; l < L; l++ {
		for _, id := range ids[c.prefix:] {
			if placeholder[id] {
				c.ids, c.mask = append(c.ids, 0), append(c.mask, 1)
			} else {
				c.ids, c.mask = append(c.ids, float32(id)), append(c.mask, 0)
			}
		}
	}
	for i := range c.uses {
		if c.uses[i].Concept.Kind != plugin.KindNeTI {
			continue
		}
		out, err := evalMapper(dev, c.uses[i].Concept, timesteps, L, c.uses[i].Truncation)
		if err != nil {
			return nil, err
		}
		c.uses[i].mapped = out
	}
	prefix := map[string][]float32{}
	if c.prefix > 0 {
		var err error
		if prefix, err = encodePrefix(dev, m, ids[:c.prefix]); err != nil {
			return nil, err
		}
	}
	S := c.seq - c.prefix
	b := graph.NewBuilder()
	var pre *TextPrefix
	if c.prefix > 0 {
		pre = &TextPrefix{Hidden: b.Input(prefixHidden, 1, c.prefix, c.d)}
		for l := 0; l < m.Text.Layers; l++ {
			pre.Cache.Keys = append(pre.Cache.Keys, b.Input(prefixKey(l), 1, c.prefix, c.d))
			pre.Cache.Values = append(pre.Cache.Values, b.Input(prefixValue(l), 1, c.prefix, c.d))
		}
	}
	out := BuildTextAfter(b, m.Text, b.Input("ids", L, S), b.Input("inject", L, S, c.d), b.Input("mask", L, S, 1), b.Input("bypass", L, S, c.d), pre)
	b.Output("keys", out.Keys)
	b.Output("values", out.Values)
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("neti: text encoder: %w", err)
	}
	if c.text, err = graph.Compile(dev, g, m.TextWeights(), m.CompileOptions(dev)); err != nil {
		return nil, fmt.Errorf("neti: text encoder: %w", err)
	}
	// Set once: the prefix and the tokens stay on the device for every step.
	prefix["ids"], prefix["mask"] = c.ids, c.mask
	for name, v := range prefix {
		if err := c.text.SetInput(name, v); err != nil {
			c.Close()
			return nil, fmt.Errorf("neti: text encoder input %s: %w", name, err)
		}
	}
	return c, nil
}

// firstPlaceholder is the first position any concept occupies.
func firstPlaceholder(uses []usePositions) int {
	p := -1
	for _, u := range uses {
		if len(u.pos) > 0 && (p < 0 || u.pos[0] < p) {
			p = u.pos[0]
		}
	}
	return max(p, 0)
}

// Names of the prefix's tensors, outputs of the prefix program and inputs
// of the per-step one.
const prefixHidden = "prefix.hidden"

func prefixKey(l int) string   { return fmt.Sprintf("prefix.keys.%d", l) }
func prefixValue(l int) string { return fmt.Sprintf("prefix.values.%d", l) }

// encodePrefix runs the text encoder once on the tokens before the first
// placeholder and returns what every step needs of them: the final hidden
// rows and each layer's self-attention keys and values. They come back to
// the host once per prompt, to be set as inputs of the per-step program
// (programs do not share device buffers).
func encodePrefix(dev *vk.Device, m *sd.Model, ids []int) (map[string][]float32, error) {
	P := len(ids)
	b := graph.NewBuilder()
	pre := BuildTextPrefix(b, m.Text, b.Input("ids", 1, P))
	b.Output(prefixHidden, pre.Hidden)
	for l := range pre.Cache.Keys {
		b.Output(prefixKey(l), pre.Cache.Keys[l])
		b.Output(prefixValue(l), pre.Cache.Values[l])
	}
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("neti: text encoder prefix: %w", err)
	}
	p, err := graph.Compile(dev, g, m.TextWeights(), m.CompileOptions(dev))
	if err != nil {
		return nil, fmt.Errorf("neti: text encoder prefix: %w", err)
	}
	defer p.Close()
	in := make([]float32, P)
	for i, id := range ids {
		in[i] = float32(id)
	}
	if err := p.SetInput("ids", in); err != nil {
		return nil, fmt.Errorf("neti: text encoder prefix: %w", err)
	}
	if err := p.Run(); err != nil {
		return nil, fmt.Errorf("neti: text encoder prefix: %w", err)
	}
	out := map[string][]float32{}
	for name := range g.Outputs {
		if out[name], err = p.Output(name); err != nil {
			return nil, fmt.Errorf("neti: text encoder prefix: %w", err)
		}
	}
	return out, nil
}

func checkConcept(m *sd.Model, c *plugin.Concept) error {
	width := c.Arch.TextWidth
	if c.Kind == plugin.KindEmbedding {
		width = c.Embedding.Shape[1]
	}
	if width != m.Text.Hidden {
		return fmt.Errorf("neti: concept %s is for a %d-wide text encoder; %s has %d (a concept for another base model, e.g. SD 1.x vs 2.x)", c.Token, width, m.Name, m.Text.Hidden)
	}
	return nil
}

// evalMapper runs a concept's mapper for every (timestep, layer) pair in
// one program run.
func evalMapper(dev *vk.Device, c *plugin.Concept, timesteps []float64, layers, trunc int) ([][]float32, error) {
	n := len(timesteps) * layers
	b := graph.NewBuilder()
	b.Output("out", BuildMapper(b, c, "mapper", b.Input("t", n), b.Input("l", n), b.Input("keep", n, c.Arch.Hidden)))
	g, err := b.Build()
	if err != nil {
		return nil, err
	}
	// The mapper stays fp32 whatever the base model uses: it is tiny and
	// its outputs are what a plugin promises to reproduce.
	p, err := graph.Compile(dev, g, MapperWeights(c, "mapper"), graph.Options{})
	if err != nil {
		return nil, fmt.Errorf("neti: mapper of %s: %w", c.Token, err)
	}
	defer p.Close()
	ts, ls := make([]float32, 0, n), make([]float32, 0, n)
	for _, t := range timesteps {
		for l := 0; l < layers; l++ {
			ts, ls = append(ts, float32(t)), append(ls, float32(l))
		}
	}
	for name, v := range map[string][]float32{"t": ts, "l": ls, "keep": Keep(n, c.Arch.Hidden, trunc)} {
		if err := p.SetInput(name, v); err != nil {
			return nil, err
		}
	}
	if err := p.Run(); err != nil {
		return nil, err
	}
	flat, err := p.Output("out")
	if err != nil {
		return nil, err
	}
	w := c.Arch.OutputWidth()
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*w : (i+1)*w]
	}
	return rows, nil
}

// Step returns, for sampler step i, each layer's keys and values context
// ([seq*D] each, batch 1).
func (c *Conditioner) Step(i int) (keys, values [][]float32, err error) {
	if i < 0 || i >= len(c.timesteps) {
		return nil, nil, fmt.Errorf("neti: step %d of %d", i, len(c.timesteps))
	}
	L, seq, D := c.layers, c.seq, c.d
	S := seq - c.prefix // positions this step encodes
	inject := make([]float32, L*S*D)
	bypass := make([]float32, L*S*D)
	for _, u := range c.uses {
		s := u.Strength
		for l := 0; l < L; l++ {
			for k, p := range u.pos {
				row := (l*S + p - c.prefix) * D
				switch u.Concept.Kind {
				case plugin.KindNeTI:
					o := u.mapped[i*L+l]
					for j := 0; j < D; j++ {
						inject[row+j] = float32(float64(o[j]) * s)
					}
					if u.Concept.Arch.OutputBypass {
						v := o[D : 2*D]
						var n2 float64
						for _, x := range v {
							n2 += float64(x) * float64(x)
						}
						f := u.Concept.BypassAlpha * s / math.Max(math.Sqrt(n2), 1e-12)
						for j := 0; j < D; j++ {
							bypass[row+j] = float32(float64(v[j]) * f)
						}
					}
				case plugin.KindEmbedding:
					e := u.Concept.Embedding
					vec := e.Data[(k%e.Shape[0])*D : (k%e.Shape[0]+1)*D]
					for j := 0; j < D; j++ {
						inject[row+j] = float32(float64(vec[j]) * s)
					}
				}
			}
		}
	}
	if err := c.text.SetInput("inject", inject); err != nil {
		return nil, nil, err
	}
	if err := c.text.SetInput("bypass", bypass); err != nil {
		return nil, nil, err
	}
	if err := c.text.Run(); err != nil {
		return nil, nil, err
	}
	kf, err := c.text.Output("keys")
	if err != nil {
		return nil, nil, err
	}
	vf, err := c.text.Output("values")
	if err != nil {
		return nil, nil, err
	}
	for l := 0; l < L; l++ {
		keys = append(keys, kf[l*seq*D:(l+1)*seq*D])
		values = append(values, vf[l*seq*D:(l+1)*seq*D])
	}
	return keys, values, nil
}

// Close releases the text program.
func (c *Conditioner) Close() error {
	if c.text == nil {
		return nil
	}
	err := c.text.Close()
	c.text = nil
	return err
}
