package main

import (
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/preview"
	"github.com/neti-project/neti/model/neti"
	"github.com/neti-project/neti/model/pipeline"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/vk"
)

func runTrain(args []string, stdout, stderr io.Writer) error {
	return runTrainWith(args, stdout, stderr, nil)
}

// runTrainWith is runTrain; shown, when set (tests), is called with the
// preview window after each validation sample is shown in it.
func runTrainWith(args []string, stdout, stderr io.Writer, shown func(*preview.Window, *image.NRGBA)) error {
	fs := newFlags("train", "--images DIR --token \"<name>\" --init-token WORD [flags]", stderr)
	model := fs.StringP("model", "m", "", "diffusers model folder (default: the built-in model)")
	images := fs.String("images", "", "folder of PNG/JPEG images of the concept (3-8 is typical)")
	token := fs.String("token", "", `the trigger written in prompts, e.g. "<cat>"`)
	initToken := fs.String("init-token", "", "a one-token class word (e.g. cat); its embedding norm scales the mapper")
	property := fs.String("property", "object", "object or style (caption templates)")
	res := fs.Int("resolution", 0, "training resolution (default: the model's)")
	steps := fs.Int("steps", 1000, "optimizer steps")
	batch := fs.Int("batch-size", 2, "images per micro-batch")
	accum := fs.Int("grad-accum", 4, "micro-batches per optimizer step")
	lr := fs.Float64("lr", 1e-3, "base learning rate; applied as lr x batch-size x grad-accum, as NeTI does")
	seed := fs.Uint64("seed", 0, "random seed (same seed, same device: same plugin bytes)")
	saveEvery := fs.Int("save-every", 250, "write a checkpoint every N steps (0: only at the end)")
	out := fs.StringP("out", "o", "", "output concept file (.neti)")
	resume := fs.String("resume", "", "continue from a full-precision concept file with optimizer state")
	compact := fs.Bool("compact", false, "write the final file in the compact shareable form (checkpoints stay full precision)")
	dryRun := fs.Bool("dry-run", false, "print the plan (images, steps, planned peak device memory with and without checkpointing) and exit")
	ckpt := fs.String("checkpointing", "auto", "recompute UNet block and CLIP layer activations in the backward instead of keeping them: auto (when the plan exceeds the memory budget), on or off")
	budgetFlag := fs.String("memory-budget", "", "device memory the training step may plan, e.g. 8GiB (default: 3/4 of the device's memory); auto checkpointing compares with it")
	device := fs.String("device", "", "Vulkan device index or name (default: NETI_DEVICE, else the best)")
	quiet := fs.Bool("quiet", false, "no progress output")
	noHalf := fs.Bool("no-half", false, "keep the frozen model weights in fp32 on the device (default: fp16 where the device has 16-bit storage; activations, gradients and the mapper are always fp32 in training; validation samples use fp16 activations unless --no-half)")
	showPreview := fs.Bool("preview", false, "show a validation sample in a window while training (forming step by step, then decoded); without a display it says why and goes on")
	previewEvery := fs.Int("preview-every", 50, "with --preview: make a new validation sample every N optimizer steps")
	previewPrompt := fs.String("preview-prompt", "", `with --preview: the validation prompt (default "a photo of a <token>", for style "a painting in the style of <token>")`)
	previewSteps := fs.Int("preview-steps", 20, "with --preview: denoising steps of the validation sample")
	previewHold := fs.Bool("preview-hold", true, "with --preview: keep the window open after training until it is closed (Esc, q, Enter)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *images == "" || *token == "" || (*initToken == "" && *resume == "") || *out == "" && !*dryRun {
		fs.Usage()
		return errors.New("--images, --token, --init-token (or --resume) and --out are required")
	}
	var templates []string
	switch *property {
	case "object":
		templates = neti.ObjectTemplates
	case "style":
		templates = neti.StyleTemplates
	default:
		return fmt.Errorf("--property must be object or style, not %q", *property)
	}
	if *steps <= 0 || *batch <= 0 || *accum <= 0 || *lr <= 0 {
		return errors.New("--steps, --batch-size, --grad-accum and --lr must be positive")
	}
	mode, err := neti.ParseCheckpointing(*ckpt)
	if err != nil {
		return fmt.Errorf("--checkpointing: %w", err)
	}
	var budget int64
	if *budgetFlag != "" {
		if budget, err = parseBytes(*budgetFlag); err != nil || budget <= 0 {
			return fmt.Errorf("--memory-budget: %q is not a positive size such as 8GiB or 6000MB", *budgetFlag)
		}
	}
	if *out != "" {
		if err := checkWritable(*out); err != nil {
			return err
		}
	}
	base, err := openGenModel(*model, "", *noHalf)
	if err != nil {
		return err
	}
	defer base.Close()
	size := *res
	if size == 0 {
		size = base.DefaultSize()
	}
	imgs, names, err := neti.LoadImages(*images, size)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, ^*seed))
	var concept *plugin.Concept
	if *resume != "" {
		if concept, err = plugin.Read(*resume); err != nil {
			return err
		}
		if concept.Compact {
			return fmt.Errorf("%s is a compact file: resume needs a full-precision checkpoint", *resume)
		}
		if concept.Token != *token {
			return fmt.Errorf("%s trains %s, not %s", *resume, concept.Token, *token)
		}
	} else if concept, err = neti.NewConcept(base, *token, *initToken, rng); err != nil {
		return err
	}
	if *showPreview && (*previewEvery < 1 || *previewSteps < 1 || *previewSteps > 1000) {
		return errors.New("--preview-every must be positive and --preview-steps in 1..1000")
	}
	topts := neti.TrainOptions{Batch: *batch, Accum: *accum, LR: *lr, Templates: templates, Seed: *seed, DropoutProb: 0.5,
		Checkpointing: mode, MemoryBudget: budget}
	dev, win, err := openDevice(*device, *showPreview && !*dryRun, "neti train "+*token, size, size, stderr)
	if err != nil && !*dryRun {
		return err
	}
	if *dryRun {
		// Planning allocates nothing; without a device it plans without
		// the device's limits.
		lim, devName := sd.Limits{}, "no device (limits not applied)"
		if err == nil {
			lim = sd.DeviceLimits(dev.Info())
			devName = fmt.Sprintf("%s (memory budget %s)", dev.Info().Name, bytesStr(uint64(lim.Budget)))
			dev.Close()
		}
		p, fitErr := neti.PlanTraining(base, concept, size, topts, lim)
		if fitErr != nil {
			// Show the numbers anyway, planned without the device's
			// per-buffer and per-binding limits (the budget still counts).
			var err error
			if p, err = neti.PlanTraining(base, concept, size, topts, sd.Limits{Budget: lim.Budget}); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "plan: train %s on %s\n  images: %d (%s) at %dx%d\n  steps: %d optimizer steps of %d micro-batches of %d (lr %g)\n  device: %s\n",
			*token, base.Name, len(imgs), strings.Join(names, ", "), size, size, *steps, *accum, *batch, *lr*float64(*batch**accum), devName)
		row := func(label string, st graph.Stats) {
			fmt.Fprintf(stdout, "  planned peak %s checkpointing: %s (weights %s, inputs/outputs/optimizer state %s, activations %s)\n",
				label, bytesStr(uint64(st.PeakBytes())), bytesStr(uint64(st.WeightBytes)), bytesStr(uint64(st.IOBytes)), bytesStr(uint64(st.ActivationBytes)))
		}
		row("without", p.Without)
		row("with   ", p.With)
		fmt.Fprintf(stdout, "  checkpointing: %s\n  planned peak device memory: %s\n", checkpointingChoice(mode, p), bytesStr(uint64(p.Chosen().PeakBytes())))
		if fitErr != nil {
			return fmt.Errorf("this training step does not fit the device: %w", fitErr)
		}
		return nil
	}
	defer dev.Close()
	pv := &previewer{win: win, stderr: stderr, shown: shown}
	defer pv.close()
	tr, err := neti.NewTrainer(dev, base, concept, imgs, size, topts)
	if err != nil {
		return err
	}
	defer tr.Close()
	if !*quiet {
		onOff := map[bool]string{false: "off", true: "on"}[tr.Checkpointing()]
		fmt.Fprintf(stderr, "train %s on %s: %d images at %dx%d, %d steps of %d x %d, lr %g, device %s, planned peak device memory %s (checkpointing %s)\n",
			*token, base.Name, len(imgs), size, size, *steps, *batch, *accum, *lr*float64(*batch**accum), dev.Info().Name, bytesStr(uint64(tr.PeakBytes())), onOff)
	}
	save := func(path string, compact bool) error {
		c, err := tr.Snapshot()
		if err != nil {
			return err
		}
		c.Training.Seed = int64(*seed)
		c.Training.Tool = "neti " + version
		if compact {
			c.Optimizer = nil
		}
		return plugin.Write(path, c, plugin.EncodeOptions{Compact: compact})
	}
	var val *validator
	if pv.active() {
		prompt := *previewPrompt
		if prompt == "" {
			prompt = "a photo of a " + *token
			if *property == "style" {
				prompt = "a painting in the style of " + *token
			}
		}
		val = &validator{dev: dev, m: base, tr: tr, pv: pv, prompt: prompt, steps: *previewSteps, size: size, seed: *seed, stderr: stderr}
		defer val.close()
		val.sample()
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer signal.Stop(interrupt)
	start, startStep := time.Now(), tr.Steps()
	var smooth float64
	for tr.Steps() < *steps {
		select {
		case <-interrupt:
			if err := save(*out, false); err != nil {
				return fmt.Errorf("interrupted; saving the checkpoint failed: %w", err)
			}
			fmt.Fprintf(stderr, "\ninterrupted at step %d: checkpoint written to %s (continue with --resume)\n", tr.Steps(), *out)
			return errors.New("interrupted")
		default:
		}
		loss, err := tr.Step()
		if err != nil {
			return err
		}
		if tr.Steps() == startStep+1 {
			smooth = loss
		} else {
			smooth = 0.9*smooth + 0.1*loss
		}
		if !*quiet {
			done := tr.Steps() - startStep
			el := time.Since(start)
			rate := float64(done) / el.Seconds()
			eta := time.Duration(float64(*steps-tr.Steps())/rate) * time.Second
			fmt.Fprintf(stderr, "\rstep %d/%d  loss %.4f  %.2f it/s  ETA %s   ", tr.Steps(), *steps, smooth, rate, eta.Round(time.Second))
		}
		if val != nil && tr.Steps()%*previewEvery == 0 && tr.Steps() < *steps {
			val.sample()
		}
		if *saveEvery > 0 && tr.Steps()%*saveEvery == 0 && tr.Steps() < *steps {
			if err := save(*out, false); err != nil {
				return err
			}
		}
	}
	if !*quiet {
		fmt.Fprintln(stderr)
	}
	if err := save(*out, *compact); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %d steps)\n", *out, *token, tr.Steps())
	if val != nil {
		val.sample()
		if *previewHold {
			pv.hold()
		}
	}
	return nil
}

// checkpointingChoice explains the checkpointing decision of a plan.
func checkpointingChoice(mode neti.Checkpointing, p neti.TrainPlan) string {
	switch {
	case mode != neti.CheckpointAuto:
		return mode.String() + " (forced)"
	case p.Budget <= 0:
		return "off (auto: no memory budget known; set --memory-budget)"
	case p.Checkpointing:
		return fmt.Sprintf("on (auto: the plan without it exceeds the budget of %s)", bytesStr(uint64(p.Budget)))
	}
	return fmt.Sprintf("off (auto: the plan fits the budget of %s)", bytesStr(uint64(p.Budget)))
}

// parseBytes reads a size: a number with an optional unit, B, KB, MB, GB
// (powers of 1000) or KiB, MiB, GiB (powers of 1024; K, M and G alone
// mean these too, as memory sizes usually do).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || v*mult > math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * mult), nil
}

// validator makes `neti train --preview`'s validation sample: the concept
// as trained so far, generated with a fixed prompt and seed, so that
// successive samples differ only by training.
type validator struct {
	dev    *vk.Device
	m      *sd.Model
	tr     *neti.Trainer
	pv     *previewer
	pl     *pipeline.Pipeline
	prompt string
	steps  int
	size   int
	seed   uint64
	stderr io.Writer
}

// sample shows a new validation sample. A failure closes the window with
// one message; training goes on.
func (v *validator) sample() {
	if !v.pv.active() {
		return
	}
	if err := v.generate(); err != nil {
		fmt.Fprintf(v.stderr, "\npreview: validation sample: %v; closing the window, training goes on\n", err)
		v.pv.close()
	}
}

func (v *validator) generate() error {
	c, err := v.tr.Snapshot()
	if err != nil {
		return err
	}
	files := []neti.ConceptFile{{Path: "(training)", Concept: c, Truncation: -1, Scale: 1}}
	ids, uses, _, err := conceptPrompt(v.m, v.prompt, files)
	if err != nil {
		return err
	}
	if v.pl == nil {
		v.pl = pipeline.New(v.m, v.dev)
	}
	lf := v.m.LatentFactor()
	step := v.tr.Steps()
	o := pipeline.Options{
		Prompt: v.prompt, Steps: v.steps, CFGScale: 7.5, Width: v.size, Height: v.size, Seed: v.seed,
		Concepts: func(ts []float64) (pipeline.Conditioning, error) {
			return neti.NewConditioner(v.dev, v.m, ids, uses, ts)
		},
		OnStep: func(s pipeline.Step) error {
			v.pv.title(fmt.Sprintf("neti train: %q after %d steps (sample step %d/%d)", v.prompt, step, s.Index+1, s.Total))
			v.pv.latents(s.Latents, v.m.VAE.LatentChannels, v.size/lf, v.size/lf)
			return nil
		},
	}
	res, err := v.pl.Generate(o)
	if err != nil {
		return err
	}
	v.pv.title(fmt.Sprintf("neti train: %q after %d steps", v.prompt, step))
	v.pv.image(res.Image)
	return nil
}

func (v *validator) close() {
	if v.pl != nil {
		v.pl.Close()
	}
}

// checkWritable fails early (before minutes of work) when the output's
// folder does not exist or cannot be written.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".neti-write-test-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
