package main

import (
	"errors"
	"fmt"
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
	"github.com/neti-project/neti/model/neti"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/vk"
)

func runTrain(args []string, stdout, stderr io.Writer) error {
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
	noHalf := fs.Bool("no-half", false, "keep the frozen model weights in fp32 on the device (default: fp16 where the device has 16-bit storage; the mapper always trains in fp32)")
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
	topts := neti.TrainOptions{Batch: *batch, Accum: *accum, LR: *lr, Templates: templates, Seed: *seed, DropoutProb: 0.5,
		Checkpointing: mode, MemoryBudget: budget}
	dev, err := vk.NewDevice(vk.Options{Device: *device})
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
