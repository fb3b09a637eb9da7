package sd

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/neti-project/neti/model/config"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/model/weights"
)

// Architectures lists the configs WriteRandom can write by name.
var Architectures = []string{"sd15"}

// Architecture returns the component configs of a named architecture.
func Architecture(name string) (weights.Configs, error) {
	switch name {
	case "sd15", "sd1.5", "sd-1.5":
		return weights.SD15Configs(), nil
	}
	return weights.Configs{}, fmt.Errorf("sd: unknown architecture %q (want one of %v)", name, Architectures)
}

// WriteRandom writes a complete diffusers folder with the architecture of
// c and seeded random float16 weights (uniform in ±1/sqrt(fan-in), norms
// at identity), for benchmarks at full size where real weights are not at
// hand. The same seed writes the same files. The tokenizer is a byte-level
// one with no merges (every prompt tokenizes, one token per byte). The
// folder appears atomically: it is written under a temporary name and
// renamed, and dir must not exist yet.
func WriteRandom(dir string, c weights.Configs, seed uint64) (err error) {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("sd: %s already exists", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	te, err := weights.ExpectCLIPText(c.TextEncoder)
	if err != nil {
		return err
	}
	un, err := weights.ExpectUNet(c.UNet)
	if err != nil {
		return err
	}
	va, err := weights.ExpectVAE(c.VAE)
	if err != nil {
		return err
	}
	vocab, merges, tokCfg := byteTokenizer()
	tc := c.TextEncoder
	tc.BOSTokenID, tc.EOSTokenID, tc.PadTokenID = len(vocab)-2, len(vocab)-1, len(vocab)-1
	files := []struct {
		path string
		v    any
	}{
		{"model_index.json", modelIndex()},
		{"scheduler/scheduler_config.json", schedulerJSON(c.Scheduler)},
		{"text_encoder/config.json", textJSON(tc)},
		{"unet/config.json", unetJSON(c.UNet)},
		{"vae/config.json", vaeJSON(c.VAE)},
		{"tokenizer/vocab.json", vocab},
		{"tokenizer/tokenizer_config.json", tokCfg},
	}
	for _, f := range files {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return fmt.Errorf("sd: write model: %s: %w", f.path, err)
		}
		if err := writeFile(filepath.Join(tmp, f.path), append(b, '\n')); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(tmp, "tokenizer/merges.txt"), []byte(merges)); err != nil {
		return err
	}
	for _, w := range []struct {
		path string
		e    weights.Expect
	}{
		{"text_encoder/model.safetensors", te},
		{"unet/diffusion_pytorch_model.safetensors", un},
		{"vae/diffusion_pytorch_model.safetensors", va},
	} {
		if err := writeRandomTensors(filepath.Join(tmp, w.path), w.e.Shapes, seed); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	return nil
}

func writeRandomTensors(path string, shapes map[string][]int, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	data := make([][]byte, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data[i] = randomHalf(names[i], shapes[names[i]], seed)
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	ts := make(map[string]safetensors.Tensor, len(names))
	for i, n := range names {
		ts[n] = safetensors.Tensor{DType: safetensors.F16, Shape: shapes[n], Data: data[i]}
	}
	if err := safetensors.Write(path, ts, map[string]string{"format": "pt", "neti": "random weights (neti model init)"}); err != nil {
		return fmt.Errorf("sd: write model: %w", err)
	}
	return nil
}

// randomHalf fills one tensor from a generator seeded by the seed and the
// tensor's name, so each tensor is independent of the others' order.
func randomHalf(name string, shape []int, seed uint64) []byte {
	n := 1
	for _, d := range shape {
		n *= d
	}
	out := make([]byte, 2*n)
	isNorm := len(shape) == 1 && isNormName(name)
	switch {
	case isNorm && filepath.Ext(name) == ".weight":
		one := safetensors.FloatToHalf(1)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint16(out[2*i:], one)
		}
		return out
	case isNorm:
		return out // zero bias
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	a := float32(0.02) // biases
	if len(shape) >= 2 {
		fan := n / shape[0]
		a = float32(1 / math.Sqrt(float64(fan)))
	}
	// Each value comes from 16 random bits, so a table of the 65536
	// possible halves replaces a conversion per value.
	var table [1 << 16]uint16
	for u := range table {
		table[u] = safetensors.FloatToHalf(a * (float32(u)/65535*2 - 1))
	}
	i := 0
	for ; i+4 <= n; i += 4 {
		r := rng.Uint64()
		o := out[2*i : 2*i+8]
		binary.LittleEndian.PutUint16(o[0:], table[uint16(r)])
		binary.LittleEndian.PutUint16(o[2:], table[uint16(r>>16)])
		binary.LittleEndian.PutUint16(o[4:], table[uint16(r>>32)])
		binary.LittleEndian.PutUint16(o[6:], table[uint16(r>>48)])
	}
	for r := rng.Uint64(); i < n; i, r = i+1, r>>16 {
		binary.LittleEndian.PutUint16(out[2*i:], table[uint16(r)])
	}
	return out
}

// isNormName tells norm parameters (identity init) from other vectors.
func isNormName(name string) bool { return strings.Contains(name, "norm") }

// byteTokenizer is a CLIP-format vocabulary of the 256 byte symbols, with
// and without "</w>", then the two specials; no merges.
func byteTokenizer() (map[string]int, string, map[string]any) {
	vocab := map[string]int{}
	var syms []string
	var rest []int
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			syms = append(syms, string(rune(b)))
		} else {
			rest = append(rest, b)
		}
	}
	for i := range rest {
		syms = append(syms, string(rune(0x100+i)))
	}
	for i, s := range syms {
		vocab[s] = i
		vocab[s+"</w>"] = 256 + i
	}
	vocab["<|startoftext|>"] = 512
	vocab["<|endoftext|>"] = 513
	cfg := map[string]any{
		"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
		"pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
	}
	return vocab, "#version: 0.2\n", cfg
}

func modelIndex() map[string]any {
	return map[string]any{
		"_class_name":             "StableDiffusionPipeline",
		"_diffusers_version":      "0.19.3",
		"requires_safety_checker": false,
		"feature_extractor":       []any{nil, nil},
		"safety_checker":          []any{nil, nil},
		"scheduler":               []string{"diffusers", config.PNDM},
		"text_encoder":            []string{"transformers", "CLIPTextModel"},
		"tokenizer":               []string{"transformers", "CLIPTokenizer"},
		"unet":                    []string{"diffusers", "UNet2DConditionModel"},
		"vae":                     []string{"diffusers", "AutoencoderKL"},
	}
}

func schedulerJSON(s config.Scheduler) map[string]any {
	return map[string]any{
		"_class_name":         s.ClassName,
		"_diffusers_version":  "0.19.3",
		"beta_start":          s.BetaStart,
		"beta_end":            s.BetaEnd,
		"beta_schedule":       s.BetaSchedule,
		"num_train_timesteps": s.NumTrainTimesteps,
		"prediction_type":     s.PredictionType,
		"set_alpha_to_one":    s.SetAlphaToOne,
		"skip_prk_steps":      s.SkipPRKSteps,
		"steps_offset":        s.StepsOffset,
		"clip_sample":         s.ClipSample,
		"trained_betas":       nil,
	}
}

func textJSON(c config.CLIPText) map[string]any {
	return map[string]any{
		"architectures":           []string{"CLIPTextModel"},
		"model_type":              "clip_text_model",
		"hidden_act":              c.HiddenAct,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"layer_norm_eps":          c.LayerNormEps,
		"max_position_embeddings": c.MaxPositionEmbeddings,
		"num_attention_heads":     c.NumAttentionHeads,
		"num_hidden_layers":       c.NumHiddenLayers,
		"projection_dim":          c.ProjectionDim,
		"vocab_size":              c.VocabSize,
		"bos_token_id":            c.BOSTokenID,
		"eos_token_id":            c.EOSTokenID,
		"pad_token_id":            c.PadTokenID,
		"torch_dtype":             "float16",
	}
}

func unetJSON(c config.UNet) map[string]any {
	m := map[string]any{
		"_class_name":            "UNet2DConditionModel",
		"_diffusers_version":     "0.19.3",
		"act_fn":                 c.ActFn,
		"attention_head_dim":     c.AttentionHeadDim,
		"block_out_channels":     c.BlockOutChannels,
		"center_input_sample":    c.CenterInputSample,
		"cross_attention_dim":    c.CrossAttentionDim,
		"down_block_types":       c.DownBlockTypes,
		"downsample_padding":     c.DownsamplePadding,
		"flip_sin_to_cos":        c.FlipSinToCos,
		"freq_shift":             c.FreqShift,
		"in_channels":            c.InChannels,
		"layers_per_block":       c.LayersPerBlock,
		"mid_block_scale_factor": c.MidBlockScaleFactor,
		"mid_block_type":         c.MidBlockType,
		"norm_eps":               c.NormEps,
		"norm_num_groups":        c.NormNumGroups,
		"out_channels":           c.OutChannels,
		"sample_size":            c.SampleSize,
		"up_block_types":         c.UpBlockTypes,
		"use_linear_projection":  c.UseLinearProjection,
		"upcast_attention":       c.UpcastAttention,
	}
	for i := range c.NumAttentionHeads {
		if c.NumAttentionHeads[i] != c.AttentionHeadDim[i] {
			m["num_attention_heads"] = c.NumAttentionHeads
			break
		}
	}
	return m
}

func vaeJSON(c config.VAE) map[string]any {
	return map[string]any{
		"_class_name":        "AutoencoderKL",
		"_diffusers_version": "0.19.3",
		"act_fn":             c.ActFn,
		"block_out_channels": c.BlockOutChannels,
		"down_block_types":   c.DownBlockTypes,
		"up_block_types":     c.UpBlockTypes,
		"in_channels":        c.InChannels,
		"out_channels":       c.OutChannels,
		"latent_channels":    c.LatentChannels,
		"layers_per_block":   c.LayersPerBlock,
		"norm_num_groups":    c.NormNumGroups,
		"sample_size":        c.SampleSize,
		"scaling_factor":     c.ScalingFactor,
		"force_upcast":       c.ForceUpcast,
	}
}
