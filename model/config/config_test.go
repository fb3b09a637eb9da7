package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

func fixturePath(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := fixtures.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPythonJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": -Infinity}`, `{"a": null}`},
		{`{"a": Infinity, "b": NaN}`, `{"a": null, "b": null}`},
		{`[NaN,-Infinity,1]`, `[null,null,1]`},
		{`{"s": "NaN and -Infinity stay", "x": 1}`, `{"s": "NaN and -Infinity stay", "x": 1}`},
		{`{"s": "quote \" NaN", "v": NaN}`, `{"s": "quote \" NaN", "v": null}`},
		{`{"s": "\\", "v": Infinity}`, `{"s": "\\", "v": null}`},
		{`{"NaNa": 1}`, `{"NaNa": 1}`},
		{`NaNx`, `NaNx`},
		{``, ``},
	}
	for _, tc := range tests {
		if got := string(pythonJSON([]byte(tc.in))); got != tc.want {
			t.Errorf("pythonJSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFixtureModels(t *testing.T) {
	tests := []struct {
		model      string
		te         CLIPText
		unetBlocks []int
		heads      []int
		crossDim   int
		groups     int
		vaeBlocks  []int
		vaeLPB     int
		scaling    float64
		sched      string
		spacing    string
	}{
		{
			model: "sd-tiny",
			te: CLIPText{Architectures: []string{"CLIPTextModel"}, ModelType: "clip_text_model", HiddenSize: 32, IntermediateSize: 37,
				NumHiddenLayers: 3, NumAttentionHeads: 4, MaxPositionEmbeddings: 77, VocabSize: 1000, HiddenAct: "quick_gelu",
				LayerNormEps: 1e-5, ProjectionDim: 32, PadTokenID: 1, BOSTokenID: 0, EOSTokenID: 2, TorchDType: "float32"},
			unetBlocks: []int{32, 32, 64, 64}, heads: []int{8, 8, 8, 8}, crossDim: 32, groups: 8,
			vaeBlocks: []int{16, 32, 64, 64}, vaeLPB: 2, scaling: 0.18215, sched: PNDM, spacing: "leading",
		},
		{
			model: "sd-shapes",
			te: CLIPText{Architectures: []string{"CLIPTextModel"}, ModelType: "clip_text_model", HiddenSize: 64, IntermediateSize: 256,
				NumHiddenLayers: 4, NumAttentionHeads: 4, MaxPositionEmbeddings: 77, VocabSize: 2048, HiddenAct: "quick_gelu",
				LayerNormEps: 1e-5, ProjectionDim: 64, PadTokenID: 2047, BOSTokenID: 2046, EOSTokenID: 2047, TorchDType: "float16"},
			unetBlocks: []int{32, 64, 64, 64}, heads: []int{2, 2, 2, 2}, crossDim: 64, groups: 32,
			vaeBlocks: []int{32, 64, 64}, vaeLPB: 1, scaling: 0.42643, sched: DPMSolverMultistep, spacing: "linspace",
		},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			dir := fixturePath(t, tc.model, "model")
			te, err := LoadCLIPText(filepath.Join(dir, "text_encoder", "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(te, tc.te) {
				t.Errorf("text encoder\n got %+v\nwant %+v", te, tc.te)
			}
			u, err := LoadUNet(filepath.Join(dir, "unet", "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			want := SD15UNet()
			want.SampleSize = 16
			want.BlockOutChannels = tc.unetBlocks
			want.AttentionHeadDim = tc.heads
			want.NumAttentionHeads = tc.heads
			want.CrossAttentionDim = tc.crossDim
			want.NormNumGroups = tc.groups
			if !reflect.DeepEqual(u, want) {
				t.Errorf("unet\n got %+v\nwant %+v", u, want)
			}
			if n := u.CrossAttentionLayers(); n != 16 {
				t.Errorf("CrossAttentionLayers = %d, want 16", n)
			}
			if hd := u.HeadDim(3); hd != tc.unetBlocks[3]/tc.heads[3] {
				t.Errorf("HeadDim(3) = %d", hd)
			}
			v, err := LoadVAE(filepath.Join(dir, "vae", "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v.BlockOutChannels, tc.vaeBlocks) || v.LayersPerBlock != tc.vaeLPB || v.ScalingFactor != tc.scaling ||
				v.NormNumGroups != tc.groups || v.LatentChannels != 4 || len(v.UpBlockTypes) != len(tc.vaeBlocks) || v.ClassName != "AutoencoderKL" {
				t.Errorf("vae %+v", v)
			}
			s, err := LoadScheduler(filepath.Join(dir, "scheduler", "scheduler_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if s.ClassName != tc.sched || s.TimestepSpacing != tc.spacing || s.BetaSchedule != "scaled_linear" ||
				s.BetaStart != 0.00085 || s.BetaEnd != 0.012 || s.StepsOffset != 1 || s.NumTrainTimesteps != 1000 || s.TrainedBetas != nil {
				t.Errorf("scheduler %+v", s)
			}
			idx, err := LoadModelIndex(filepath.Join(dir, "model_index.json"))
			if err != nil {
				t.Fatal(err)
			}
			wantIdx := map[string]Component{
				"scheduler":    {"diffusers", tc.sched},
				"text_encoder": {"transformers", "CLIPTextModel"},
				"tokenizer":    {"transformers", "CLIPTokenizer"},
				"unet":         {"diffusers", "UNet2DConditionModel"},
				"vae":          {"diffusers", "AutoencoderKL"},
			}
			if idx.ClassName != "StableDiffusionPipeline" || idx.DiffusersVersion != "0.19.3" || idx.RequiresSafetyChecker ||
				!reflect.DeepEqual(idx.Components, wantIdx) {
				t.Errorf("model index %+v", idx)
			}
		})
	}
}

// The diffusers configs of runwayml/stable-diffusion-v1-5 (diffusers 0.6
// era files: older keys only, everything else defaulted).
const (
	sd15UNetJSON = `{
  "_class_name": "UNet2DConditionModel",
  "_diffusers_version": "0.6.0",
  "act_fn": "silu",
  "attention_head_dim": 8,
  "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1,
  "flip_sin_to_cos": true,
  "freq_shift": 0,
  "in_channels": 4,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-05,
  "norm_num_groups": 32,
  "out_channels": 4,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}`
	sd15VAEJSON = `{
  "_class_name": "AutoencoderKL",
  "_diffusers_version": "0.6.0",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3,
  "latent_channels": 4,
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 512,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}`
	sd15TextJSON = `{
  "_name_or_path": "openai/clip-vit-large-patch14",
  "architectures": ["CLIPTextModel"],
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "dropout": 0.0,
  "eos_token_id": 2,
  "hidden_act": "quick_gelu",
  "hidden_size": 768,
  "initializer_factor": 1.0,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77,
  "model_type": "clip_text_model",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "projection_dim": 768,
  "torch_dtype": "float32",
  "transformers_version": "4.22.0.dev0",
  "vocab_size": 49408
}`
	sd15SchedulerJSON = `{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false
}`
)

func TestSD15MatchesDiffusersFiles(t *testing.T) {
	u, err := ParseUNet([]byte(sd15UNetJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, SD15UNet()) {
		t.Errorf("unet\n got %+v\nwant %+v", u, SD15UNet())
	}
	v, err := ParseVAE([]byte(sd15VAEJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, SD15VAE()) {
		t.Errorf("vae\n got %+v\nwant %+v", v, SD15VAE())
	}
	te, err := ParseCLIPText([]byte(sd15TextJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(te, SD15TextEncoder()) {
		t.Errorf("text encoder\n got %+v\nwant %+v", te, SD15TextEncoder())
	}
	s, err := ParseScheduler([]byte(sd15SchedulerJSON))
	if err != nil {
		t.Fatal(err)
	}
	s.set = nil
	if !reflect.DeepEqual(s, SD15Scheduler()) {
		t.Errorf("scheduler\n got %+v\nwant %+v", s, SD15Scheduler())
	}
	for _, err := range []error{SD15UNet().Validate(), SD15VAE().Validate(), SD15TextEncoder().Validate(), SD15Scheduler().Validate()} {
		if err != nil {
			t.Error(err)
		}
	}
}

// sd21UNetJSON is shaped like stabilityai/stable-diffusion-2-1's UNet: a
// per-block head list, linear projections, 1024-wide context, upcast.
const sd21UNetJSON = `{
  "_class_name": "UNet2DConditionModel",
  "attention_head_dim": [5, 10, 20, 20],
  "block_out_channels": [320, 640, 1280, 1280],
  "cross_attention_dim": 1024,
  "dual_cross_attention": false,
  "num_class_embeds": null,
  "only_cross_attention": false,
  "sample_size": 96,
  "upcast_attention": true,
  "use_linear_projection": true
}`

func TestUNetVariants(t *testing.T) {
	u, err := ParseUNet([]byte(sd21UNetJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u.NumAttentionHeads, []int{5, 10, 20, 20}) || !u.UseLinearProjection || !u.UpcastAttention ||
		u.CrossAttentionDim != 1024 || u.SampleSize != 96 || u.LayersPerBlock != 2 || u.NormNumGroups != 32 {
		t.Errorf("sd2.1-like unet %+v", u)
	}
	for i := range 4 {
		if u.HeadDim(i) != 64 {
			t.Errorf("HeadDim(%d) = %d, want 64", i, u.HeadDim(i))
		}
	}
	over, err := ParseUNet([]byte(`{"attention_head_dim": 64, "num_attention_heads": [4, 8, 16, 16], "sample_size": [32, 32],
		"transformer_layers_per_block": [1, 1, 1, 1], "mid_block_only_cross_attention": false, "attention_type": "default"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(over.NumAttentionHeads, []int{4, 8, 16, 16}) || !reflect.DeepEqual(over.AttentionHeadDim, []int{64, 64, 64, 64}) || over.SampleSize != 32 {
		t.Errorf("num_attention_heads override: %+v", over)
	}
	def, err := ParseUNet([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := SD15UNet()
	want.ClassName, want.SampleSize, want.CrossAttentionDim = "", 0, 1280
	if !reflect.DeepEqual(def, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", def, want)
	}
}

func TestUNetRejects(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{"class_embed_type": "timestep"}`, "class_embed_type"},
		{`{"num_class_embeds": 10}`, "num_class_embeds"},
		{`{"dual_cross_attention": true}`, "dual_cross_attention"},
		{`{"only_cross_attention": [false, true, false, false]}`, "only_cross_attention"},
		{`{"addition_embed_type": "text_time"}`, "addition_embed_type"},
		{`{"encoder_hid_dim": 4096}`, "encoder_hid_dim"},
		{`{"time_cond_proj_dim": 256}`, "time_cond_proj_dim"},
		{`{"mid_block_type": null}`, "mid_block_type"},
		{`{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}`, "mid_block_type"},
		{`{"down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}`, "down_block_types[0]"},
		{`{"up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]}`, "up_block_types[1]"},
		{`{"block_out_channels": [320, 640, 1280]}`, "same length"},
		{`{"attention_head_dim": [8, 8]}`, "attention_head_dim has 2 entries"},
		{`{"layers_per_block": []}`, "layers_per_block is empty"},
		{`{"layers_per_block": [1, 2, 2, 2]}`, "only one value"},
		{`{"cross_attention_dim": [768, 1024, 768, 768]}`, "only one value"},
		{`{"norm_num_groups": 48}`, "not divisible by norm_num_groups"},
		{`{"norm_num_groups": null}`, "norm_num_groups is null"},
		{`{"attention_head_dim": 7}`, "attention heads"},
		{`{"transformer_layers_per_block": 2}`, "transformer_layers_per_block"},
		{`{"act_fn": "gelu"}`, "act_fn"},
		{`{"time_embedding_type": "fourier"}`, "time_embedding_type"},
		{`{"resnet_time_scale_shift": "scale_shift"}`, "resnet_time_scale_shift"},
		{`{"conv_in_kernel": 7}`, "conv_in_kernel"},
		{`{"downsample_padding": 0}`, "downsample_padding"},
		{`{"attention_type": "gated"}`, "attention_type"},
		{`{"resnet_out_scale_factor": 2}`, "resnet_out_scale_factor"},
		{`{"layers_per_block": 100000}`, "layers_per_block is 100000"},
		{`{"block_out_channels": [320, 640, 1280, -1280]}`, "block_out_channels[3]"},
		{`{"sample_size": [64, 32]}`, "not square"},
		{`{"_class_name": "UNet2DModel"}`, "UNet2DModel"},
		{`{"attention_head_dim": "8"}`, "int or a list"},
		{`null`, "not an object"},
		{`[1]`, "config: unet"},
		{`{"in_channels": 4,}`, "config: unet"},
	}
	for _, tc := range tests {
		_, err := ParseUNet([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "config: unet") {
			t.Errorf("ParseUNet(%s): error %v, want one mentioning %q", tc.json, err, tc.want)
		}
	}
}

func TestCLIPText(t *testing.T) {
	full := `{"model_type": "clip", "projection_dim": 1024, "text_config": {"hidden_size": 1024, "num_attention_heads": 16,
		"num_hidden_layers": 23, "intermediate_size": 4096, "hidden_act": "gelu", "max_position_embeddings": 77}}`
	c, err := ParseCLIPText([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 1024 || c.HiddenAct != "gelu" || c.NumHiddenLayers != 23 || c.HeadDim() != 64 || c.VocabSize != 49408 {
		t.Errorf("text_config: %+v", c)
	}
	def, err := ParseCLIPText([]byte(`{}`))
	if err != nil || !reflect.DeepEqual(def, DefaultCLIPText()) {
		t.Errorf("defaults: %+v, %v", def, err)
	}
	for _, tc := range []struct{ json, want string }{
		{`{"hidden_size": 30, "num_attention_heads": 4}`, "not divisible"},
		{`{"hidden_act": "relu"}`, "hidden_act"},
		{`{"model_type": "bert"}`, "model_type"},
		{`{"vocab_size": 0}`, "vocab_size"},
		{`{"layer_norm_eps": 0}`, "layer_norm_eps"},
		{`{"hidden_size": "big"}`, "config: text encoder"},
	} {
		if _, err := ParseCLIPText([]byte(tc.json)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCLIPText(%s): error %v, want one mentioning %q", tc.json, err, tc.want)
		}
	}
}

func TestVAE(t *testing.T) {
	def, err := ParseVAE([]byte(`{"_class_name": "AutoencoderKL"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultVAE()
	want.ClassName = "AutoencoderKL"
	if !reflect.DeepEqual(def, want) || def.DownsampleFactor() != 1 {
		t.Errorf("defaults %+v", def)
	}
	if SD15VAE().DownsampleFactor() != 8 {
		t.Errorf("SD15 downsample factor %d, want 8", SD15VAE().DownsampleFactor())
	}
	for _, tc := range []struct{ json, want string }{
		{`{"_class_name": "AutoencoderTiny"}`, "AutoencoderTiny"},
		{`{"down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"]}`, "same length"},
		{`{"up_block_types": ["AttnUpDecoderBlock2D"]}`, "up_block_types[0]"},
		{`{"norm_num_groups": 48}`, "divisible"},
		{`{"scaling_factor": null}`, "scaling_factor"},
		{`{"scaling_factor": -1}`, "scaling_factor"},
		{`{"act_fn": "relu"}`, "act_fn"},
		{`{"latent_channels": 0}`, "latent_channels"},
	} {
		if _, err := ParseVAE([]byte(tc.json)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseVAE(%s): error %v, want one mentioning %q", tc.json, err, tc.want)
		}
	}
}

func TestSchedulerDefaultsAndWithClass(t *testing.T) {
	tests := []struct {
		json                    string
		spacing                 string
		alphaOne, clip, skipPRK bool
		variance                string
	}{
		{`{"_class_name": "DDIMScheduler"}`, "leading", true, true, false, ""},
		{`{"_class_name": "DDPMScheduler"}`, "leading", false, true, false, "fixed_small"},
		{`{"_class_name": "PNDMScheduler"}`, "leading", false, false, false, ""},
		{`{"_class_name": "DPMSolverMultistepScheduler"}`, "linspace", false, false, false, ""},
		{`{"_class_name": "EulerAncestralDiscreteScheduler"}`, "linspace", false, false, false, ""},
		{`{"_class_name": "PNDMScheduler", "skip_prk_steps": true, "timestep_spacing": "trailing"}`, "trailing", false, false, true, ""},
	}
	for _, tc := range tests {
		s, err := ParseScheduler([]byte(tc.json))
		if err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if s.TimestepSpacing != tc.spacing || s.SetAlphaToOne != tc.alphaOne || s.ClipSample != tc.clip || s.SkipPRKSteps != tc.skipPRK ||
			s.VarianceType != tc.variance || s.SolverOrder != 2 || s.AlgorithmType != "dpmsolver++" || !math.IsInf(s.LambdaMinClipped, -1) {
			t.Errorf("%s: %+v", tc.json, s)
		}
	}
	shapes, err := LoadScheduler(fixturePath(t, "sd-shapes", "model", "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if shapes.SolverType != "midpoint" || !shapes.LowerOrderFinal || shapes.UseKarrasSigmas || shapes.DynamicThresholdingRatio != 0.995 {
		t.Errorf("sd-shapes scheduler %+v", shapes)
	}
	withInf, err := ParseScheduler([]byte(`{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "solver_order": 3}`))
	if err != nil || !math.IsInf(withInf.LambdaMinClipped, -1) || withInf.SolverOrder != 3 {
		t.Errorf("-Infinity: %+v, %v", withInf, err)
	}

	// from_config semantics: explicit keys survive, the rest re-default.
	tiny, err := LoadScheduler(fixturePath(t, "sd-tiny", "model", "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	dpm := tiny.WithClass(DPMSolverMultistep)
	if dpm.ClassName != DPMSolverMultistep || dpm.TimestepSpacing != "leading" || dpm.BetaSchedule != "scaled_linear" || dpm.SolverOrder != 2 || dpm.StepsOffset != 1 {
		t.Errorf("sd-tiny PNDM as DPM: %+v", dpm)
	}
	partial, err := ParseScheduler([]byte(`{"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`))
	if err != nil {
		t.Fatal(err)
	}
	ddim := partial.WithClass(DDIM)
	if !ddim.SetAlphaToOne || !ddim.ClipSample || ddim.BetaStart != 0.00085 || ddim.TimestepSpacing != "leading" {
		t.Errorf("partial PNDM as DDIM: %+v", ddim)
	}
	if lin := partial.WithClass(EulerAncestral); lin.TimestepSpacing != "linspace" || lin.BetaSchedule != "scaled_linear" {
		t.Errorf("partial PNDM as Euler a: %+v", lin)
	}
	builtin := SD15Scheduler().WithClass(DDIM)
	if builtin.SetAlphaToOne || builtin.ClipSample || builtin.StepsOffset != 1 || builtin.ClassName != DDIM {
		t.Errorf("SD15 as DDIM keeps every value: %+v", builtin)
	}
}

func TestSchedulerRejects(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"trained_betas": [0.1, 0.2]}`, "trained_betas has 2"},
		{`{"beta_schedule": "sigmoid"}`, "beta_schedule"},
		{`{"beta_start": 0.5, "beta_end": 0.1}`, "beta_start"},
		{`{"prediction_type": "flow"}`, "prediction_type"},
		{`{"timestep_spacing": "karras"}`, "timestep_spacing"},
		{`{"num_train_timesteps": 0}`, "num_train_timesteps"},
		{`{"steps_offset": 1000}`, "steps_offset"},
		{`{"solver_order": 4}`, "solver_order"},
		{`{"algorithm_type": "unipc"}`, "algorithm_type"},
		{`{"solver_type": "bh2"}`, "solver_type"},
		{`{"_class_name": 3}`, "config: scheduler"},
	} {
		if _, err := ParseScheduler([]byte(tc.json)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScheduler(%s): error %v, want one mentioning %q", tc.json, err, tc.want)
		}
	}
	betas := `{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3], "beta_schedule": "whatever"}`
	if s, err := ParseScheduler([]byte(betas)); err != nil || len(s.TrainedBetas) != 3 {
		t.Errorf("trained betas: %+v, %v", s, err)
	}
}

func TestModelIndexAndLoadErrors(t *testing.T) {
	m, err := ParseModelIndex([]byte(`{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
		"safety_checker": [null, null], "feature_extractor": ["transformers", null], "requires_safety_checker": true, "other": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Components) != 1 || m.Components["unet"].Class != "UNet2DConditionModel" || !m.RequiresSafetyChecker {
		t.Errorf("%+v", m)
	}
	if _, err := ParseModelIndex([]byte(`{"_class_name": 1}`)); err == nil {
		t.Error("numeric _class_name: want an error")
	}
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.json")
	for name, load := range map[string]func(string) error{
		"unet":        func(p string) error { _, err := LoadUNet(p); return err },
		"vae":         func(p string) error { _, err := LoadVAE(p); return err },
		"text":        func(p string) error { _, err := LoadCLIPText(p); return err },
		"scheduler":   func(p string) error { _, err := LoadScheduler(p); return err },
		"model index": func(p string) error { _, err := LoadModelIndex(p); return err },
	} {
		if err := load(missing); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s: error %v does not name %s", name, err, missing)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"act_fn": "gelu"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUNet(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "act_fn") {
		t.Errorf("LoadUNet(bad): %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, m := range []string{"sd-tiny", "sd-shapes"} {
		for _, p := range []string{"unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json", "model_index.json"} {
			if b, err := os.ReadFile(fixturePath(f, m, "model", p)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(sd21UNetJSON))
	f.Add([]byte(`{"lambda_min_clipped": -Infinity, "s": "NaN"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any input must give a value or an error, never a panic; a value
		// that parsed must also pass its own validation.
		if u, err := ParseUNet(b); err == nil {
			if u.Validate() != nil || u.CrossAttentionLayers() < 1 {
				t.Errorf("accepted invalid unet %+v", u)
			}
		}
		if v, err := ParseVAE(b); err == nil && v.Validate() != nil {
			t.Errorf("accepted invalid vae %+v", v)
		}
		if c, err := ParseCLIPText(b); err == nil && c.Validate() != nil {
			t.Errorf("accepted invalid text encoder %+v", c)
		}
		if s, err := ParseScheduler(b); err == nil {
			if s.Validate() != nil {
				t.Errorf("accepted invalid scheduler %+v", s)
			}
			_ = s.WithClass(DDIM)
		}
		_, _ = ParseModelIndex(b)
		_ = pythonJSON(b)
	})
}
