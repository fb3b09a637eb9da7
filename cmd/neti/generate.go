package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/pngmeta"
	"github.com/neti-project/neti/internal/preview"
	"github.com/neti-project/neti/internal/progress"
	"github.com/neti-project/neti/model/builtin"
	"github.com/neti-project/neti/model/neti"
	"github.com/neti-project/neti/model/pipeline"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/vk"
)

// genFlags are the settings of one `neti generate` run.
type genFlags struct {
	model, tokenizer, prompt, negative, sampler, output string
	latents, latentsKey, device                         string
	concepts                                            []string
	steps, width, height, batch, vaeTile, truncation    int
	cfg                                                 float64
	seed                                                int64
	quiet, verbose, dryRun, noHalf                      bool
	preview, previewHold                                bool
	// previewShown, when set (tests), is called with the window after each
	// image is shown in it.
	previewShown func(win *preview.Window, img *image.NRGBA)
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", "-p PROMPT [flags]", stderr)
	var f genFlags
	fs.StringVarP(&f.model, "model", "m", "", "diffusers model folder or single-file checkpoint (.safetensors, .ckpt) (default: the built-in "+builtin.Name+" model)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "CLIP tokenizer folder for a single-file checkpoint (default: tokenizer/ next to it)")
	fs.StringVarP(&f.prompt, "prompt", "p", "", "what to draw (the words after the flags are used when -p is not given)")
	fs.StringVarP(&f.negative, "negative-prompt", "n", "", "what to steer away from")
	fs.IntVar(&f.steps, "steps", 25, "denoising steps")
	fs.Float64Var(&f.cfg, "cfg-scale", 7.5, "classifier-free guidance scale (1 or less: no guidance, half the work)")
	fs.Int64Var(&f.seed, "seed", 42, "random seed of the initial noise, as torch.Generator().manual_seed on the CPU; -1 picks one")
	fs.IntVarP(&f.width, "width", "W", 0, "image width, a multiple of 8 (default: the model's native size)")
	fs.IntVarP(&f.height, "height", "H", 0, "image height, a multiple of 8 (default: the model's native size)")
	fs.StringVar(&f.sampler, "sampler", pipeline.Samplers[0], "sampler: "+strings.Join(pipeline.Samplers, ", "))
	fs.IntVar(&f.batch, "batch-count", 1, "images to make, with seeds seed, seed+1, ...")
	fs.StringVarP(&f.output, "output", "o", "output.png", "PNG to write; with --batch-count > 1 numbered: output-1.png, output-2.png, ...")
	fs.StringVar(&f.latents, "latents", "", "initial noise from a .safetensors file instead of the seed (for exact comparison with other implementations)")
	fs.StringVar(&f.latentsKey, "latents-key", defaultLatentsKey, "tensor of the --latents file to use ([1, 4, h, w] or [4, h, w])")
	fs.StringArrayVar(&f.concepts, "concept", nil, "a concept file (repeatable): FILE or FILE:trunc=K,scale=S; name it in the prompt by its trigger (<cat>), file name (cat) or embedding:cat; (<cat>:1.2) sets its strength")
	fs.IntVar(&f.truncation, "truncation", -1, "NeTI nested-dropout truncation for every concept: keep the first K of 128 mapper units (smaller: coarser, more editable; -1: all)")
	fs.StringVar(&f.device, "device", "", "Vulkan device index or name (default: NETI_DEVICE, else the best)")
	fs.IntVar(&f.vaeTile, "vae-tile", 0, "decode the latent in tiles of this many latent pixels (default: only when a whole decode does not fit the device)")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress or notes on stderr")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "also print the device, the compiled programs and their planned memory")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (sizes, planned peak device memory, VAE tiling) and exit")
	fs.BoolVar(&f.noHalf, "no-half", false, "keep the model's weights and activations in fp32 on the device (default: fp16 storage where the device has 16-bit storage, half the memory, fp32 math; also NETI_DISABLE_F16=1)")
	fs.BoolVar(&f.preview, "preview", false, "show the image forming in a window (every step, then the result); without a display it says why and goes on")
	fs.BoolVar(&f.previewHold, "preview-hold", true, "with --preview: keep the window open after the last image until it is closed (Esc, q, Enter)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.prompt == "" && fs.NArg() > 0 {
		f.prompt = strings.Join(fs.Args(), " ")
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (the prompt is given with -p)", fs.Args())
	}
	return generate(f, stdout, stderr)
}

func generate(f genFlags, stdout, stderr io.Writer) error {
	sampler, err := pipeline.SamplerName(f.sampler)
	if err != nil {
		return err
	}
	switch {
	case f.steps < 1 || f.steps > 1000:
		return fmt.Errorf("--steps %d is not in 1..1000", f.steps)
	case f.batch < 1 || f.batch > 10000:
		return fmt.Errorf("--batch-count %d is not in 1..10000", f.batch)
	case f.seed < -1:
		return fmt.Errorf("--seed %d: use a non-negative seed, or -1 for a random one", f.seed)
	case f.vaeTile < 0:
		return fmt.Errorf("--vae-tile %d is negative", f.vaeTile)
	case f.width < 0 || f.height < 0:
		return fmt.Errorf("-W/-H must be positive")
	}
	m, err := openGenModel(f.model, f.tokenizer, f.noHalf)
	if err != nil {
		return err
	}
	defer m.Close()
	files, err := loadConcepts(f.concepts, f.truncation)
	if err != nil {
		return err
	}
	var conceptIDs []int
	var uses []neti.ConceptUse
	if len(files) > 0 {
		var warnings []string
		if conceptIDs, uses, warnings, err = conceptPrompt(m, f.prompt, files); err != nil {
			return err
		}
		if !f.quiet {
			for _, w := range warnings {
				fmt.Fprintln(stderr, "warning:", w)
			}
		}
	}

	var latents []float32
	if f.latents != "" {
		var lw, lh int
		if latents, lw, lh, err = readLatents(f.latents, f.latentsKey, m); err != nil {
			return err
		}
		if f.batch > 1 {
			return fmt.Errorf("--latents gives one image's noise; it cannot be combined with --batch-count %d", f.batch)
		}
		lw, lh = lw*m.LatentFactor(), lh*m.LatentFactor()
		if f.width != 0 && f.width != lw || f.height != 0 && f.height != lh {
			return fmt.Errorf("the latents in %s make a %dx%d image, not %dx%d", f.latents, lw, lh, f.width, f.height)
		}
		f.width, f.height = lw, lh
	}
	if f.width, f.height, err = imageSize(m, f.width, f.height); err != nil {
		return err
	}
	seed := uint64(f.seed)
	if f.seed == -1 {
		var b [4]byte
		if _, err := crand.Read(b[:]); err != nil {
			return fmt.Errorf("pick a seed: %w", err)
		}
		seed = uint64(binary.LittleEndian.Uint32(b[:]))
	}
	outputs := outputNames(f.output, f.batch)
	if !f.dryRun {
		if err := pngmeta.CheckWritable(outputs[0]); err != nil {
			return err
		}
	}
	opts := pipeline.Options{
		Prompt: f.prompt, NegativePrompt: f.negative, Steps: f.steps, CFGScale: f.cfg,
		Sampler: sampler, Width: f.width, Height: f.height, Latents: latents,
	}
	decOpts := sd.DecoderOptions{Tile: f.vaeTile}
	if f.dryRun {
		return dryRun(f, m, opts, decOpts, stdout)
	}

	dev, win, err := openDevice(f.device, f.preview, "neti: "+f.prompt, f.width, f.height, stderr)
	if err != nil {
		return err
	}
	defer dev.Close()
	pv := &previewer{win: win, stderr: stderr, shown: f.previewShown}
	defer pv.close()
	lf := m.LatentFactor()
	if len(uses) > 0 {
		opts.Concepts = func(ts []float64) (pipeline.Conditioning, error) {
			return neti.NewConditioner(dev, m, conceptIDs, uses, ts)
		}
	}
	p := pipeline.New(m, dev)
	p.Decoder = decOpts
	defer p.Close()
	if f.verbose {
		fmt.Fprintf(stderr, "device: %s\nmodel: %s (%s)\n", dev.Info(), m.Name, m.Path)
	}
	for k, out := range outputs {
		o := opts
		o.Seed = seed + uint64(k)
		label := "generate"
		if len(outputs) > 1 {
			label = fmt.Sprintf("image %d/%d", k+1, len(outputs))
		}
		bar := progress.New(stderr, label, f.steps, progress.Options{Quiet: f.quiet})
		o.OnStep = func(s pipeline.Step) error {
			bar.Step(s.Index + 1)
			if pv.active() {
				pv.title(fmt.Sprintf("neti: %s (seed %d) step %d/%d", f.prompt, o.Seed, s.Index+1, s.Total))
				pv.latents(s.Latents, m.VAE.LatentChannels, f.height/lf, f.width/lf)
			}
			return nil
		}
		res, err := p.Generate(o)
		bar.Done()
		if err != nil {
			return err
		}
		if f.verbose && k == 0 {
			printStats(stderr, p)
		}
		if !f.quiet {
			for _, w := range res.Warnings {
				fmt.Fprintln(stderr, "warning:", w)
			}
		}
		params := pngmeta.Params{
			Prompt: f.prompt, NegativePrompt: f.negative, Steps: f.steps, Sampler: pipeline.DisplayName(sampler),
			CFGScale: f.cfg, Seed: int64(o.Seed), Width: f.width, Height: f.height, Model: m.Name,
		}
		if len(uses) > 0 {
			params.Extra = append(params.Extra, pngmeta.Field{Key: "Concepts", Value: describeConcepts(files, uses)})
		}
		if f.latents != "" {
			params.Extra = append(params.Extra, pngmeta.Field{Key: "Initial latents", Value: filepath.Base(f.latents) + ":" + f.latentsKey})
		}
		params.Extra = append(params.Extra, pngmeta.Field{Key: "Version", Value: "neti " + strings.TrimSpace(version)})
		if err := pngmeta.WriteFile(out, res.Image, pngmeta.Text{Key: pngmeta.Key, Value: params.String()}); err != nil {
			return err
		}
		fmt.Fprintln(stdout, out)
		if pv.active() {
			pv.title(fmt.Sprintf("neti: %s (seed %d) -> %s", f.prompt, o.Seed, out))
			pv.image(res.Image)
		}
	}
	if f.previewHold {
		pv.hold()
	}
	return nil
}

// imageSize fills a zero width or height with the model's native size and
// checks the result.
func imageSize(m *sd.Model, w, h int) (int, int, error) {
	if w == 0 {
		w = m.DefaultSize()
	}
	if h == 0 {
		h = m.DefaultSize()
	}
	return w, h, m.CheckSize(w, h)
}

// openGenModel opens -m, or the built-in model when none is given; noHalf
// keeps its weights fp32 on the device.
func openGenModel(path, tokDir string, noHalf bool) (m *sd.Model, err error) {
	if path == "" {
		m, err = sd.OpenBuiltin(os.Getenv("NETI_CACHE_DIR"))
	} else {
		m, err = sd.Open(path, sd.Options{TokenizerDir: tokDir})
	}
	if err == nil && noHalf {
		m.Weights = graph.WeightsF32
	}
	return m, err
}

// outputNames numbers the output file when several images are made.
func outputNames(path string, n int) []string {
	if n == 1 {
		return []string{path}
	}
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	if ext == "" {
		ext = ".png"
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d%s", base, i+1, ext)
	}
	return out
}

const defaultLatentsKey = "latents"

// readLatents reads initial noise [1, c, h, w] or [c, h, w] from a
// safetensors file: the tensor named key, or the file's only tensor when
// key is the default.
func readLatents(path, key string, m *sd.Model) ([]float32, int, int, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("--latents: %w", err)
	}
	defer f.Close()
	if _, ok := f.Info(key); !ok {
		names := f.Names()
		// The default key gives way to a file's only tensor; a key the user
		// chose does not.
		if len(names) != 1 || key != defaultLatentsKey {
			sort.Strings(names)
			if len(names) > 8 {
				names = append(names[:8], "...")
			}
			return nil, 0, 0, fmt.Errorf("--latents: %s has no tensor %q (it has %s; choose one with --latents-key)", path, key, strings.Join(names, ", "))
		}
		key = names[0]
	}
	v, shape, err := f.Float32(key)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("--latents: %w", err)
	}
	if len(shape) == 4 && shape[0] == 1 {
		shape = shape[1:]
	}
	if len(shape) != 3 || shape[0] != m.VAE.LatentChannels {
		return nil, 0, 0, fmt.Errorf("--latents: %s %q has shape %v, want [1, %d, h, w]", path, key, shape, m.VAE.LatentChannels)
	}
	return v, shape[2], shape[1], nil
}

func dryRun(f genFlags, m *sd.Model, o pipeline.Options, dec sd.DecoderOptions, stdout io.Writer) error {
	lim := sd.Limits{}
	devName := "no device (limits not applied)"
	if dev, err := vk.NewDevice(vk.Options{Device: f.device}); err == nil {
		info := dev.Info()
		lim = sd.DeviceLimits(info)
		devName = fmt.Sprintf("%s (budget %s, one binding at most %s)", info.Name, bytesStr(uint64(lim.Budget)), bytesStr(uint64(lim.MaxStorageBufferRange)))
		dev.Close()
	}
	mem, fitErr := pipeline.Plan(m, o, lim, dec)
	if fitErr != nil {
		// Show the numbers anyway, planned without the device's limits.
		var err error
		if mem, err = pipeline.Plan(m, o, sd.Limits{}, dec); err != nil {
			return err
		}
	}
	lf := m.LatentFactor()
	fmt.Fprintf(stdout, "plan: %d image(s) %dx%d (latent %dx%d) with %s, %d %s steps, CFG %g\n  device: %s\n",
		f.batch, o.Width, o.Height, o.Width/lf, o.Height/lf, m.Name, o.Steps, pipeline.DisplayName(o.Sampler), o.CFGScale, devName)
	row := func(name string, w, io, act, peak int64) {
		fmt.Fprintf(stdout, "  %-13s %10s %10s %11s %10s\n", name, bytesStr(uint64(w)), bytesStr(uint64(io)), bytesStr(uint64(act)), bytesStr(uint64(peak)))
	}
	var storage string
	opts := m.GraphOptions(lim.Limits)
	switch {
	case opts.Weights == graph.WeightsF32:
		storage = "fp32 (--no-half)"
	case lim.F16 && opts.Activations == graph.ActivationsF16:
		storage = "fp16 weights and activations, fp32 math"
	case lim.F16:
		storage = "fp16 weights, fp32 activations (a CPU device: fp16 activations would only slow it), fp32 math"
	case lim.Name == "":
		storage = "fp32 (no device to ask for 16-bit storage)"
	default:
		storage = "fp32 (no 16-bit storage on the device, or NETI_DISABLE_F16=1)"
	}
	fmt.Fprintf(stdout, "  storage: %s\n", storage)
	fmt.Fprintf(stdout, "  %-13s %10s %10s %11s %10s\n", "program", "weights", "in/out", "activations", "peak")
	row("text encoder", mem.Text.WeightBytes, mem.Text.IOBytes, mem.Text.ActivationBytes, mem.Text.PeakBytes())
	row("unet", mem.UNet.WeightBytes, mem.UNet.IOBytes, mem.UNet.ActivationBytes, mem.UNet.PeakBytes())
	row("vae decoder", mem.Decoder.WeightBytes, mem.Decoder.IOBytes, mem.Decoder.ActivationBytes, mem.Decoder.PeakBytes())
	fmt.Fprintf(stdout, "  planned peak device memory: %s\n", bytesStr(uint64(mem.PeakBytes())))
	if t := mem.Tiling; t.Tiled {
		fmt.Fprintf(stdout, "  vae decode in tiles of %dx%d latent pixels overlapping by %d\n", t.W, t.H, t.Overlap)
	} else {
		fmt.Fprintln(stdout, "  vae decode in one piece")
	}
	if fitErr != nil {
		return fmt.Errorf("this generation does not fit the device: %w", fitErr)
	}
	if lim.Budget > 0 && mem.PeakBytes() > lim.Budget {
		return fmt.Errorf("the plan needs %s, more than the device's budget of %s", bytesStr(uint64(mem.PeakBytes())), bytesStr(uint64(lim.Budget)))
	}
	return nil
}

func printStats(w io.Writer, p *pipeline.Pipeline) {
	st := p.Stats()
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	var total int64
	for _, n := range names {
		s := st[n]
		total += s.PeakBytes()
		fmt.Fprintf(w, "  %-40s %5d dispatches, planned %s (weights %s, activations %s)\n", n, s.Dispatches,
			bytesStr(uint64(s.PeakBytes())), bytesStr(uint64(s.WeightBytes)), bytesStr(uint64(s.ActivationBytes)))
	}
	fmt.Fprintf(w, "  planned peak device memory: %s\n", bytesStr(uint64(total)))
}
