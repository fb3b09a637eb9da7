// Package importer turns concepts made by other tools into neti concepts:
//
//   - official NeTI checkpoints: mapper-*.pt (torch.save of state_dict, the
//     pyrallis cfg and the pickled positional encoder holding W), with the
//     optional learned_embeds-*.bin as a cross-check;
//   - textual-inversion embeddings: AUTOMATIC1111 .pt (string_to_param),
//     diffusers learned_embeds.safetensors / .bin ({token: tensor}), kohya
//     sd-scripts (emb_params), or any torch file holding one N x width tensor.
//
// Torch files are read with internal/torchpickle, which never runs Python:
// only the classes torch.save writes for tensors, plus NeTI's positional
// encoder (read as plain data), are allowed.
package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/neti-project/neti/internal/torchpickle"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/plugin"
)

// Options tune an import.
type Options struct {
	// Embeds is NeTI's learned_embeds-*.bin saved with a mapper checkpoint.
	// NeTI never trains that row (it is the super-category's embedding), so
	// it is only checked: same placeholder, same width, norm = norm scale.
	Embeds string
	// TextWidth is the hidden size of the target text encoder; when set, a
	// concept of another width is refused.
	TextWidth int
	// Token replaces the trigger token found in, or derived from, the file.
	Token string
	// Base is recorded as the concept's base-model fingerprint; a non-zero
	// Base.TextWidth must agree with the concept.
	Base plugin.BaseModel
}

// Source formats, recorded in the concept's Metadata["source_format"].
const (
	FormatNeTI            = "neti-official"
	FormatA1111           = "a1111"
	FormatDiffusers       = "diffusers"
	FormatKohya           = "kohya"
	FormatTensor          = "tensor"
	netiEncoderClass      = "models.positional_encoding.NeTIPositionalEncoding"
	parameterDictClass    = "torch.nn.modules.container.ParameterDict"
	netiUNetLayers        = 16 // len(NeTI constants.UNET_LAYERS)
	netiLNEps             = 1e-5
	netiLeakySlope        = 0.01
	embedsNormRelativeTol = 1e-4
)

// Import reads src and returns a validated concept.
func Import(src string, opts Options) (*plugin.Concept, error) {
	c, err := importFile(src, opts)
	if err != nil {
		return nil, fmt.Errorf("importer: %s: %w", src, err)
	}
	return c, nil
}

func importFile(src string, opts Options) (*plugin.Concept, error) {
	kind, err := sniffFile(src)
	if err != nil {
		return nil, err
	}
	var c *plugin.Concept
	switch kind {
	case "torch":
		c, err = importTorch(src, opts)
	case "safetensors":
		c, err = importSafetensors(src)
	case "pickle":
		return nil, errors.New("legacy PyTorch file (not the zip format torch >= 1.6 writes): load it in Python and save it again with torch.save")
	case "neti":
		return nil, errors.New("this is already a neti concept file; use it directly")
	default:
		return nil, errors.New("unrecognised format: expected a torch .pt/.bin (zip) or a .safetensors file")
	}
	if err != nil {
		return nil, err
	}
	return finish(c, opts)
}

// sniffFile names a file's container from its first bytes.
func sniffFile(src string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 16)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "torch", nil
	case bytes.HasPrefix(head, []byte("\x89NETI")):
		return "neti", nil
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return "pickle", nil
	case len(head) >= 9 && head[8] == '{':
		return "safetensors", nil
	}
	return "", nil
}

// finish applies the options and validates.
func finish(c *plugin.Concept, opts Options) (*plugin.Concept, error) {
	if opts.Embeds != "" && c.Kind != plugin.KindNeTI {
		return nil, errors.New("learned embeds (--embeds) go with a NeTI mapper checkpoint, and this file is a textual-inversion embedding")
	}
	d := c.Arch.TextWidth
	if opts.TextWidth > 0 && d != opts.TextWidth {
		what := "embedding"
		if c.Kind == plugin.KindNeTI {
			what = "mapper output"
		}
		return nil, fmt.Errorf("%s width %d != text hidden size %d of the target model (the concept was made for another base model)", what, d, opts.TextWidth)
	}
	if opts.Base.TextWidth != 0 && opts.Base.TextWidth != d {
		return nil, fmt.Errorf("concept width %d != base model text width %d", d, opts.Base.TextWidth)
	}
	c.Base = opts.Base
	c.Base.TextWidth = d
	if opts.Token != "" {
		c.Token = opts.Token
	}
	if strings.TrimSpace(c.Token) == "" {
		return nil, errors.New("the file names no trigger token; pass one with Options.Token (--token)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func stem(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

func importTorch(src string, opts Options) (*plugin.Concept, error) {
	v, err := loadTorch(src, torchpickle.Options{AllowClasses: []string{netiEncoderClass, parameterDictClass}})
	if err != nil {
		return nil, err
	}
	switch top := v.(type) {
	case *torchpickle.Tensor:
		return embeddingConcept(src, FormatTensor, stem(src), "tensor", top)
	case map[string]any:
		if _, ok := top["state_dict"]; ok {
			if _, ok := top["cfg"]; ok {
				return importNeTI(src, top, opts)
			}
		}
		if sp, ok := top["string_to_param"]; ok {
			return importA1111(src, top, sp)
		}
		if t, ok := top["emb_params"].(*torchpickle.Tensor); ok {
			return embeddingConcept(src, FormatKohya, stem(src), "emb_params", t)
		}
		if len(top) == 1 {
			for k, val := range top {
				if t, ok := val.(*torchpickle.Tensor); ok {
					return embeddingConcept(src, FormatDiffusers, k, k, t)
				}
			}
		}
		return nil, fmt.Errorf("torch file with keys %v is neither a NeTI mapper nor a textual-inversion embedding", sortedKeys(top))
	}
	return nil, fmt.Errorf("torch file holds %T, not a dict or a tensor", v)
}

func importA1111(src string, top map[string]any, sp any) (*plugin.Concept, error) {
	params, ok := sp.(map[string]any)
	if obj, isObj := sp.(*torchpickle.Object); isObj && obj.Class == parameterDictClass {
		// The original textual_inversion code saved an nn.ParameterDict,
		// whose entries live in the module's _parameters.
		st, _ := obj.State.(map[string]any)
		params, ok = st["_parameters"].(map[string]any)
	}
	if !ok {
		return nil, fmt.Errorf("string_to_param is %T, not a dict of tensors", sp)
	}
	if len(params) != 1 {
		return nil, fmt.Errorf("string_to_param has %d entries %v; an embedding file holds exactly one", len(params), sortedKeys(params))
	}
	var key string
	var t *torchpickle.Tensor
	for k, v := range params {
		key = k
		t, ok = v.(*torchpickle.Tensor)
	}
	if !ok {
		return nil, fmt.Errorf("string_to_param[%q] is not a tensor", key)
	}
	// The webui's prompt word is the file name; "name" is informational.
	c, err := embeddingConcept(src, FormatA1111, stem(src), "string_to_param."+key, t)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"name", "sd_checkpoint", "sd_checkpoint_name"} {
		if s, ok := top[k].(string); ok {
			c.Metadata["a1111_"+k] = s
		}
	}
	if step, ok := top["step"].(int64); ok && step >= 0 && step <= math.MaxInt32 {
		c.Training.Steps = int(step)
	}
	c.Training.Tool = "AUTOMATIC1111 webui"
	return c, nil
}

// embeddingConcept makes a static concept from an [N, D] or [D] tensor.
func embeddingConcept(src, format, token, key string, t *torchpickle.Tensor) (*plugin.Concept, error) {
	v, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return vectorsConcept(src, format, token, key, t.Shape, v)
}

func vectorsConcept(src, format, token, key string, shape []int, v []float32) (*plugin.Concept, error) {
	switch len(shape) {
	case 1:
		shape = []int{1, shape[0]}
	case 2:
	default:
		return nil, fmt.Errorf("%s has shape %v; an embedding is N x width", key, shape)
	}
	if shape[0] < 1 || shape[1] < 1 {
		return nil, fmt.Errorf("%s has empty shape %v", key, shape)
	}
	tools := map[string]string{
		FormatDiffusers: "diffusers textual_inversion", FormatKohya: "kohya-ss sd-scripts", FormatTensor: "",
	}
	return &plugin.Concept{
		Kind:      plugin.KindEmbedding,
		Token:     token,
		Arch:      plugin.Arch{TextWidth: shape[1]},
		Embedding: &plugin.Tensor{Shape: []int{shape[0], shape[1]}, Data: v},
		Training:  plugin.Training{Tool: tools[format]},
		Metadata:  map[string]string{"source": filepath.Base(src), "source_format": format, "source_key": key},
	}, nil
}

func importSafetensors(src string) (*plugin.Concept, error) {
	f, err := safetensors.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := f.Names()
	has := func(n string) bool { _, ok := f.Info(n); return ok }
	read := func(format, token, key string) (*plugin.Concept, error) {
		v, shape, err := f.Float32(key)
		if err != nil {
			return nil, err
		}
		return vectorsConcept(src, format, token, key, shape, v)
	}
	switch {
	case has("emb_params"):
		return read(FormatKohya, stem(src), "emb_params")
	case has("clip_l") || has("clip_g"):
		return nil, errors.New("SDXL embedding (clip_l / clip_g): neti's base models are SD 1.x / 2.x")
	case has("input_layer.weight"):
		return nil, errors.New("NeTI mapper weights without their config: import the mapper-*.pt checkpoint instead")
	case len(names) == 1 && strings.HasPrefix(names[0], "string_to_param."):
		return read(FormatA1111, stem(src), names[0])
	case len(names) == 1:
		return read(FormatDiffusers, names[0], names[0])
	}
	return nil, fmt.Errorf("safetensors file with tensors %v is not a textual-inversion embedding (want one tensor, or emb_params)", names)
}

// importNeTI converts an official NeTI mapper checkpoint (neti.md §5.8).
func importNeTI(src string, top map[string]any, opts Options) (*plugin.Concept, error) {
	sd, ok := top["state_dict"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("state_dict is %T, not a dict", top["state_dict"])
	}
	cfg, ok := top["cfg"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("cfg is %T, not a dict", top["cfg"])
	}
	model, err := section(cfg, "model")
	if err != nil {
		return nil, err
	}
	data, err := section(cfg, "data")
	if err != nil {
		return nil, err
	}
	optim, _ := section(cfg, "optim") // only training metadata comes from it
	if pe, err := cfgBool(model, "use_positional_encoding", true); err != nil {
		return nil, err
	} else if !pe {
		return nil, errors.New("NeTI's BasicEncoder ablation (use_positional_encoding: false) is not supported")
	}

	c := &plugin.Concept{
		Kind: plugin.KindNeTI, BypassAlpha: plugin.DefaultBypassAlpha,
		Weights:  &plugin.MapperWeights{},
		Metadata: map[string]string{"source": filepath.Base(src), "source_format": FormatNeTI},
	}
	for _, nt := range c.Weights.Named() {
		t, err := stateTensor(sd, nt.Name)
		if err != nil {
			return nil, err
		}
		*nt.Tensor = *t
	}
	// net.0 is input_layer registered a second time; if present it must be
	// the same tensor, or this is not the checkpoint it claims to be.
	for _, p := range [][2]string{{"net.0.weight", "input_layer.weight"}, {"net.0.bias", "input_layer.bias"}} {
		if _, ok := sd[p[0]]; !ok {
			continue
		}
		a, err := stateTensor(sd, p[0])
		if err != nil {
			return nil, err
		}
		if !equalBits(a.Data, c.Weights.Get(p[1]).Data) {
			return nil, fmt.Errorf("%s differs from %s; NeTI saves them as one tensor", p[0], p[1])
		}
	}

	if err := readEncoder(c, top, sd, model); err != nil {
		return nil, err
	}

	bypass, err := cfgBool(model, "output_bypass", true)
	if err != nil {
		return nil, err
	}
	anchors, err := cfgInt(model, "num_pe_time_anchors", plugin.DefaultAnchors)
	if err != nil {
		return nil, err
	}
	out := c.Weights.OutW.Shape[0]
	d := out
	if bypass {
		if out%2 != 0 {
			return nil, fmt.Errorf("output_layer.0.weight has %d rows, odd for a bypass mapper", out)
		}
		d = out / 2
	}
	c.Arch = plugin.Arch{
		TextWidth: d, Anchors: anchors, Layers: netiUNetLayers, InputWidth: anchors * netiUNetLayers,
		Hidden: c.Weights.Lin1W.Shape[0], LNEps: netiLNEps, LeakySlope: netiLeakySlope, OutputBypass: bypass,
	}

	// norm_scale is target_norm; null, or normalize_mapper_output false,
	// means the output is not rescaled (stored as 0).
	if norm, err := cfgBool(model, "normalize_mapper_output", true); err != nil {
		return nil, err
	} else if norm && model["target_norm"] != nil {
		if c.NormScale, err = cfgFloat(model, "target_norm", 0); err != nil {
			return nil, err
		}
	}
	if c.Token, err = cfgString(data, "placeholder_token"); err != nil {
		return nil, err
	}
	if c.SuperCategory, err = cfgString(data, "super_category_token"); err != nil {
		return nil, err
	}
	if p, ok := model["pretrained_model_name_or_path"].(string); ok {
		c.Metadata["pretrained_model"] = p
	}
	if err := trainingInfo(c, src, model, optim); err != nil {
		return nil, err
	}
	if opts.Embeds != "" {
		if err := checkEmbeds(c, opts.Embeds); err != nil {
			return nil, err
		}
		c.Metadata["learned_embeds"] = filepath.Base(opts.Embeds)
	}
	return c, nil
}

// readEncoder takes W and the sigmas from the pickled NeTIPositionalEncoding
// (a GPU run's only copy of W), or from state_dict["encoder.w"], which a CPU
// run with .cuda() patched out also writes.
func readEncoder(c *plugin.Concept, top, sd, model map[string]any) error {
	var st map[string]any
	if obj, ok := top["encoder"].(*torchpickle.Object); ok {
		if obj.Class != netiEncoderClass {
			return fmt.Errorf("encoder is a %s, not %s", obj.Class, netiEncoderClass)
		}
		st, _ = obj.State.(map[string]any)
	}
	wt, _ := st["w"].(*torchpickle.Tensor)
	if wt == nil {
		wt, _ = sd["encoder.w"].(*torchpickle.Tensor)
	}
	if wt == nil {
		return errors.New("no Fourier matrix: neither encoder.w in the pickled encoder nor encoder.w in state_dict")
	}
	w, err := wt.Float32()
	if err != nil {
		return fmt.Errorf("encoder.w: %w", err)
	}
	if len(wt.Shape) != 2 || wt.Shape[1] != 2 {
		return fmt.Errorf("encoder.w has shape %v, want [num_w 2]", wt.Shape)
	}
	numW := wt.Shape[0]
	if n, ok := st["num_w"].(int64); ok && n != int64(numW) {
		return fmt.Errorf("encoder num_w %d disagrees with w of shape %v", n, wt.Shape)
	}
	c.Fourier = plugin.Fourier{NumW: numW, W: w, SigmaT: plugin.DefaultSigmaT, SigmaL: plugin.DefaultSigmaL}
	// The sigmas are informative only (W already includes them); prefer
	// the encoder's own values, then the cfg's.
	sigmas, _ := model["pe_sigmas"].(map[string]any)
	for _, s := range []struct {
		key string
		dst *float64
	}{{"sigma_t", &c.Fourier.SigmaT}, {"sigma_l", &c.Fourier.SigmaL}} {
		for _, m := range []map[string]any{st, sigmas} {
			if v, ok := number(m[s.key]); ok {
				*s.dst = v
				break
			}
		}
	}
	return nil
}

var stepsRe = regexp.MustCompile(`steps-(\d+)`)

func trainingInfo(c *plugin.Concept, src string, model, optim map[string]any) error {
	t := &c.Training
	t.Tool = "NeTI (official)"
	// NeTI's resume reads the step from the file name; -final means done.
	if m := stepsRe.FindStringSubmatch(filepath.Base(src)); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			t.Steps = n
		}
	} else if strings.Contains(filepath.Base(src), "final") {
		t.Steps, _ = cfgInt(optim, "max_train_steps", 0)
	}
	var err error
	if t.BatchSize, err = cfgInt(optim, "train_batch_size", 0); err != nil {
		return err
	}
	if t.GradAccum, err = cfgInt(optim, "gradient_accumulation_steps", 0); err != nil {
		return err
	}
	if t.LearningRate, err = cfgFloat(optim, "learning_rate", 0); err != nil {
		return err
	}
	if scale, ok := optim["scale_lr"].(bool); ok {
		c.Metadata["scale_lr"] = strconv.FormatBool(scale)
	}
	if seed, ok := optim["seed"].(int64); ok {
		t.Seed = seed
	}
	if nd, err := cfgBool(model, "use_nested_dropout", true); err != nil {
		return err
	} else if nd {
		if t.NestedDropoutProb, err = cfgFloat(model, "nested_dropout_prob", 0.5); err != nil {
			return err
		}
	}
	return nil
}

// checkEmbeds cross-checks NeTI's learned_embeds file against the mapper.
func checkEmbeds(c *plugin.Concept, path string) error {
	v, err := loadTorch(path, torchpickle.Options{})
	if err != nil {
		return fmt.Errorf("learned embeds %s: %w", path, err)
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return fmt.Errorf("learned embeds %s: want a dict {placeholder: vector}, got %T", path, v)
	}
	for tok, val := range m {
		if tok != c.Token {
			return fmt.Errorf("learned embeds %s is for %q, the mapper for %q", path, tok, c.Token)
		}
		t, ok := val.(*torchpickle.Tensor)
		if !ok {
			return fmt.Errorf("learned embeds %s: %q is %T, not a tensor", path, tok, val)
		}
		e, err := t.Float32()
		if err != nil {
			return fmt.Errorf("learned embeds %s: %w", path, err)
		}
		if len(e) != c.Arch.TextWidth {
			return fmt.Errorf("learned embeds %s: vector of %d values for a mapper of width %d", path, len(e), c.Arch.TextWidth)
		}
		if c.NormScale > 0 {
			var ss float64
			for _, x := range e {
				ss += float64(x) * float64(x)
			}
			if n := math.Sqrt(ss); math.Abs(n-c.NormScale) > embedsNormRelativeTol*c.NormScale {
				return fmt.Errorf("learned embeds %s: norm %.6g differs from the mapper's norm scale %.6g (files from different runs?)", path, n, c.NormScale)
			}
		}
	}
	return nil
}

// loadTorch is torchpickle.Load without repeating the path in errors (the
// caller names the file once).
func loadTorch(path string, opts torchpickle.Options) (any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return torchpickle.LoadReader(f, st.Size(), opts)
}

func stateTensor(sd map[string]any, name string) (*plugin.Tensor, error) {
	t, ok := sd[name].(*torchpickle.Tensor)
	if !ok {
		if _, present := sd[name]; present {
			return nil, fmt.Errorf("state_dict[%q] is %T, not a tensor", name, sd[name])
		}
		return nil, fmt.Errorf("state_dict has no %q (keys: %v)", name, sortedKeys(sd))
	}
	v, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("state_dict[%q]: %w", name, err)
	}
	return &plugin.Tensor{Shape: append([]int(nil), t.Shape...), Data: v}, nil
}

func section(cfg map[string]any, name string) (map[string]any, error) {
	m, ok := cfg[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("cfg has no %q section", name)
	}
	return m, nil
}

// number accepts pyrallis' ints and floats.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func cfgFloat(m map[string]any, key string, def float64) (float64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := number(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("cfg %s is %v, not a finite number", key, v)
	}
	return f, nil
}

func cfgInt(m map[string]any, key string, def int) (int, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	n, ok := v.(int64)
	if !ok || n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("cfg %s is %v, not a count", key, v)
	}
	return int(n), nil
}

func cfgBool(m map[string]any, key string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("cfg %s is %v, not true/false", key, v)
	}
	return b, nil
}

func cfgString(m map[string]any, key string) (string, error) {
	s, ok := m[key].(string)
	if !ok {
		return "", fmt.Errorf("cfg has no string %s", key)
	}
	return s, nil
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
