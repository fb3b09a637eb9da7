package main

import (
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/neti-project/neti/internal/pngmeta"
	"github.com/neti-project/neti/internal/preview"
	"github.com/neti-project/neti/model/neti"
	"github.com/neti-project/neti/model/pipeline"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/vk"
)

const viewKeys = `Keys (the image regenerates after each change; the title shows the settings):
  Up / Down        truncation index +/- 8 (with Shift +/- 1): lower is coarser and
                   more editable, 128 is the concept as trained (reconstruction)
  Left / Right     seed -/+ 1;  r: a random seed
  Tab              select the next concept (whose strength [ ] change)
  [ / ]            strength of the selected concept -/+ 0.1 (with Shift -/+ 0.01)
  c                put the next loaded concept in the prompt in place of the current one
  s                save the image as a PNG with its parameters (in --out-dir)
  Esc / q          quit`

// viewState is what `neti view` generates; keys change it.
type viewState struct {
	seed     uint64
	trunc    int       // 1..128
	strength []float64 // per concept file
	selected int       // concept whose strength the brackets change
	active   int       // concept the prompt names
	prompt   string    // with files[active]'s trigger
}

type viewFlags struct {
	model, tokenizer, prompt, negative, sampler, device, outDir string
	concepts                                                    []string
	steps, width, height, truncation                            int
	cfg                                                         float64
	seed                                                        int64
	noHalf                                                      bool
	// keys, when set (tests), are pressed before the window's own, and
	// onShown is called after each finished image.
	keys    []preview.Key
	onShown func(win *preview.Window, st viewState, img *image.NRGBA) []preview.Key
}

func runView(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("view", "-p PROMPT --concept FILE [--concept FILE ...] [flags]", stderr)
	var f viewFlags
	fs.StringVarP(&f.model, "model", "m", "", "diffusers model folder or single-file checkpoint (default: the built-in model)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "CLIP tokenizer folder for a single-file checkpoint")
	fs.StringVarP(&f.prompt, "prompt", "p", "", "the prompt; name a concept by its trigger (<cat>) so that c can swap it")
	fs.StringVarP(&f.negative, "negative-prompt", "n", "", "what to steer away from")
	fs.StringArrayVar(&f.concepts, "concept", nil, "a concept file (repeatable): FILE or FILE:trunc=K,scale=S")
	fs.IntVar(&f.steps, "steps", 20, "denoising steps")
	fs.Float64Var(&f.cfg, "cfg-scale", 7.5, "classifier-free guidance scale")
	fs.Int64Var(&f.seed, "seed", 42, "initial seed")
	fs.IntVarP(&f.width, "width", "W", 0, "image width (default: the model's)")
	fs.IntVarP(&f.height, "height", "H", 0, "image height (default: the model's)")
	fs.StringVar(&f.sampler, "sampler", pipeline.Samplers[0], "sampler: "+strings.Join(pipeline.Samplers, ", "))
	fs.IntVar(&f.truncation, "truncation", 128, "initial truncation index (1..128)")
	fs.StringVar(&f.device, "device", "", "Vulkan device index or name")
	fs.StringVar(&f.outDir, "out-dir", ".", "where s saves PNGs")
	fs.BoolVar(&f.noHalf, "no-half", false, "keep the model's weights and activations in fp32 on the device (default: fp16 storage where the device has 16-bit storage)")
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		io.WriteString(stderr, "\n"+viewKeys+"\n")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.prompt == "" && fs.NArg() > 0 {
		f.prompt = strings.Join(fs.Args(), " ")
	}
	return view(f, stdout, stderr)
}

func view(f viewFlags, stdout, stderr io.Writer) error {
	switch {
	case f.prompt == "":
		return errors.New("a prompt is needed (-p)")
	case len(f.concepts) == 0:
		return errors.New("at least one --concept is needed")
	case f.truncation < 1 || f.truncation > 128:
		return fmt.Errorf("--truncation %d is not in 1..128", f.truncation)
	case f.steps < 1 || f.steps > 1000:
		return fmt.Errorf("--steps %d is not in 1..1000", f.steps)
	case f.seed < 0:
		return fmt.Errorf("--seed %d is negative", f.seed)
	}
	sampler, err := pipeline.SamplerName(f.sampler)
	if err != nil {
		return err
	}
	if err := preview.Check(); err != nil {
		return fmt.Errorf("neti view needs a window: %w", err)
	}
	m, err := openGenModel(f.model, f.tokenizer, f.noHalf)
	if err != nil {
		return err
	}
	defer m.Close()
	files, err := loadConcepts(f.concepts, -1)
	if err != nil {
		return err
	}
	if f.width, f.height, err = imageSize(m, f.width, f.height); err != nil {
		return err
	}
	if err := os.MkdirAll(f.outDir, 0o755); err != nil {
		return fmt.Errorf("--out-dir: %w", err)
	}
	st := viewState{seed: uint64(f.seed), trunc: f.truncation, prompt: f.prompt}
	for i, cf := range files {
		st.strength = append(st.strength, cf.Scale)
		if strings.Contains(f.prompt, cf.Concept.Token) && !strings.Contains(f.prompt, files[st.active].Concept.Token) {
			st.active = i
		}
	}
	dev, err := vk.NewDevice(vk.Options{Device: f.device, Present: true})
	if err != nil {
		return fmt.Errorf("neti view needs a device that can show a window: %w", err)
	}
	defer dev.Close()
	W, H := previewSize(f.width, f.height)
	win, err := preview.Open(dev, preview.Options{Title: "neti view", Width: W, Height: H})
	if err != nil {
		return err
	}
	defer win.Close()
	p := pipeline.New(m, dev)
	defer p.Close()

	lf := m.LatentFactor()
	pending := append([]preview.Key(nil), f.keys...)
	errRestart := errors.New("settings changed")
	var res *pipeline.Result // the image of the current settings; nil until made
	var uses []neti.ConceptUse
	for {
		title := viewTitle(st, files)
		if res == nil && len(pending) == 0 {
			for i := range files {
				files[i].Truncation, files[i].Scale = st.trunc, st.strength[i]
			}
			var ids []int
			var warnings []string
			if ids, uses, warnings, err = conceptPrompt(m, st.prompt, files); err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(stderr, "warning:", w)
			}
			o := pipeline.Options{
				Prompt: st.prompt, NegativePrompt: f.negative, Steps: f.steps, CFGScale: f.cfg, Sampler: sampler,
				Width: f.width, Height: f.height, Seed: st.seed,
				OnStep: func(s pipeline.Step) error {
					win.SetTitle(fmt.Sprintf("%s - step %d/%d", title, s.Index+1, s.Total))
					if err := win.Show(preview.Latent(s.Latents, m.VAE.LatentChannels, f.height/lf, f.width/lf)); err != nil {
						return err
					}
					win.Poll()
					if ks := win.Keys(); len(ks) > 0 || win.Closed() {
						pending = append(pending, ks...)
						return errRestart // start over with the new settings at once
					}
					return nil
				},
			}
			if len(uses) > 0 {
				o.Concepts = func(ts []float64) (pipeline.Conditioning, error) {
					return neti.NewConditioner(dev, m, ids, uses, ts)
				}
			}
			r, err := p.Generate(o)
			if win.Closed() {
				return nil
			}
			if err != nil && !errors.Is(err, errRestart) {
				return err
			}
			if err == nil {
				res = r
				if err := win.Show(preview.Image(r.Image)); err != nil {
					return err
				}
				win.SetTitle(title)
				if f.onShown != nil {
					pending = append(pending, f.onShown(win, st, r.Image)...)
				}
			}
		}
		for len(pending) == 0 {
			if win.Closed() {
				return nil
			}
			win.Wait(0.25)
			pending = append(pending, win.Keys()...)
		}
		for len(pending) > 0 {
			k := pending[0]
			pending = pending[1:]
			switch k.Name {
			case "escape", "q":
				return nil
			case "s":
				if res == nil {
					fmt.Fprintln(stderr, "view: no finished image of these settings to save yet")
					continue
				}
				path, err := saveView(f, st, files, uses, m, sampler, res)
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, path)
				win.SetTitle(title + " - saved " + filepath.Base(path))
			default:
				if msg := st.apply(k, files); msg != "" {
					fmt.Fprintln(stderr, "view:", msg)
				} else {
					res = nil
				}
			}
		}
	}
}

// apply changes the settings for a key; it returns a message when the key
// does nothing.
func (st *viewState) apply(k preview.Key, files []neti.ConceptFile) string {
	step, fine := 8, 1
	dstrength := 0.1
	if k.Shift {
		step, dstrength = fine, 0.01
	}
	switch k.Name {
	case "up":
		st.trunc = min(128, st.trunc+step)
	case "down":
		st.trunc = max(1, st.trunc-step)
	case "left":
		if st.seed == 0 {
			return "the seed is already 0"
		}
		st.seed--
	case "right":
		st.seed++
	case "r":
		st.seed = uint64(rand.Uint32())
	case "tab":
		st.selected = (st.selected + 1) % len(files)
	case "[", "]":
		d := dstrength
		if k.Name == "[" {
			d = -d
		}
		v := math.Round((st.strength[st.selected]+d)*100) / 100
		st.strength[st.selected] = max(0, v)
	case "c":
		if len(files) < 2 {
			return "c needs a second --concept to swap in"
		}
		cur := files[st.active].Concept.Token
		if !strings.Contains(st.prompt, cur) {
			return fmt.Sprintf("the prompt does not name %s by its trigger, so c cannot swap it", cur)
		}
		next := (st.active + 1) % len(files)
		st.prompt = strings.ReplaceAll(st.prompt, cur, files[next].Concept.Token)
		st.active = next
	default:
		return fmt.Sprintf("key %q does nothing (see neti view --help)", k.Name)
	}
	return ""
}

// viewTitle shows the settings in the window title.
func viewTitle(st viewState, files []neti.ConceptFile) string {
	var parts []string
	for i, f := range files {
		s := fmt.Sprintf("%s x%.2f", f.Concept.Token, st.strength[i])
		if i == st.selected && len(files) > 1 {
			s = "[" + s + "]"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("neti view: %q | seed %d | trunc %d | %s", st.prompt, st.seed, st.trunc, strings.Join(parts, " "))
}

// saveView writes the image with its parameters, like neti generate, to a
// new file in --out-dir.
func saveView(f viewFlags, st viewState, files []neti.ConceptFile, uses []neti.ConceptUse, m *sd.Model, sampler string, res *pipeline.Result) (string, error) {
	base := filepath.Join(f.outDir, fmt.Sprintf("neti-view-%d-t%d", st.seed, st.trunc))
	path := base + ".png"
	for i := 2; ; i++ {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		path = fmt.Sprintf("%s-%d.png", base, i)
	}
	params := pngmeta.Params{
		Prompt: st.prompt, NegativePrompt: f.negative, Steps: f.steps, Sampler: pipeline.DisplayName(sampler),
		CFGScale: f.cfg, Seed: int64(st.seed), Width: f.width, Height: f.height, Model: m.Name,
	}
	if len(uses) > 0 {
		params.Extra = append(params.Extra, pngmeta.Field{Key: "Concepts", Value: describeConcepts(files, uses)})
	}
	params.Extra = append(params.Extra, pngmeta.Field{Key: "Version", Value: "neti " + strings.TrimSpace(version)})
	if err := pngmeta.WriteFile(path, res.Image, pngmeta.Text{Key: pngmeta.Key, Value: params.String()}); err != nil {
		return "", err
	}
	return path, nil
}
