package plugin

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/safetensors"
)

// loadSDTiny builds a Concept from the sd-tiny fixture mapper
// (neti/mapper.safetensors + mapper_config.json).
func loadSDTiny(t testing.TB) *Concept {
	t.Helper()
	cfgPath, err := fixtures.Path("sd-tiny", "neti", "mapper_config.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		OutputDim         int     `json:"output_dim"`
		OutputBypass      bool    `json:"output_bypass"`
		Anchors           int     `json:"num_pe_time_anchors"`
		NumW              int     `json:"pe_num_w"`
		Layers            int     `json:"num_unet_layers"`
		NestedDropoutProb float64 `json:"nested_dropout_prob"`
		NormScale         float64 `json:"norm_scale"`
		Token             string  `json:"placeholder_token"`
		Super             string  `json:"super_category_token"`
		Bypass            float64 `json:"bypass_scale"`
		Sigmas            struct {
			T float64 `json:"sigma_t"`
			L float64 `json:"sigma_l"`
		} `json:"pe_sigmas"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	wPath, err := fixtures.Path("sd-tiny", "neti", "mapper.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(wPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	read := func(name string) Tensor {
		v, shape, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		return Tensor{Shape: shape, Data: v}
	}
	c := &Concept{
		Kind: KindNeTI, Token: cfg.Token, SuperCategory: cfg.Super,
		NormScale: cfg.NormScale, BypassAlpha: cfg.Bypass,
		Arch:    DefaultArch(cfg.OutputDim),
		Weights: &MapperWeights{},
		Base:    BaseModel{TextWidth: cfg.OutputDim, TextLayers: 3, VocabSize: 1000, Hash: "sd-tiny-test"},
		Training: Training{Steps: 10, BatchSize: 2, GradAccum: 4, LearningRate: 8e-3,
			NestedDropoutProb: cfg.NestedDropoutProb, NumImages: 6, Seed: 7,
			Date: "2024-01-02T03:04:05Z", Tool: "neti test"},
		Metadata: map[string]string{"source": "sd-tiny fixture"},
	}
	c.Arch.Anchors, c.Arch.Layers, c.Arch.OutputBypass = cfg.Anchors, cfg.Layers, cfg.OutputBypass
	c.Arch.InputWidth = cfg.Anchors * cfg.Layers
	w := read("encoder.w")
	c.Fourier = Fourier{SigmaT: cfg.Sigmas.T, SigmaL: cfg.Sigmas.L, NumW: cfg.NumW, W: w.Data}
	for _, nt := range c.Weights.Named() {
		*nt.Tensor = read(nt.Name)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// relErr is ||a-b|| / ||b|| in float64.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// synthMapper builds a full-size mapper the way NeTI initialises one
// (anchor input layer from a random W, PyTorch-default uniform init
// U(±1/√fan_in) elsewhere, LayerNorm at γ=1, β=0) and then moves every value
// by Gaussian noise of std pert, standing in for training. The official
// fixture checkpoint moved its input layer by rms 0.0022 in 10 AdamW steps
// at lr 8e-3; as a random walk over NeTI's 1000 steps that is about 0.02.
func synthMapper(seed uint64, d int, pert float64) *Concept {
	r := rand.New(rand.NewPCG(seed, 0x6e657469))
	const numW = DefaultNumW
	w := make([]float32, 2*numW)
	for i := 0; i < numW; i++ {
		w[2*i] = float32(r.NormFloat64() * DefaultSigmaT)
		w[2*i+1] = float32(r.NormFloat64() * DefaultSigmaL)
	}
	a := DefaultArch(d)
	c := &Concept{
		Kind: KindNeTI, Token: "<synth>", SuperCategory: "dog", NormScale: 0.38, BypassAlpha: DefaultBypassAlpha,
		Fourier: Fourier{SigmaT: DefaultSigmaT, SigmaL: DefaultSigmaL, NumW: numW, W: w},
		Arch:    a, Weights: &MapperWeights{},
		Base:     BaseModel{TextWidth: d, TextLayers: 12, VocabSize: 49408, Hash: "synthetic"},
		Training: Training{Steps: 1000, BatchSize: 2, GradAccum: 4, LearningRate: 8e-3, Tool: "synth"},
	}
	tensor := func(shape []int, init func() float64) Tensor {
		t := Tensor{Shape: shape}
		t.Data = make([]float32, t.Numel())
		for i := range t.Data {
			t.Data[i] = float32(init() + pert*r.NormFloat64())
		}
		return t
	}
	uniform := func(fanIn int) func() float64 {
		b := 1 / math.Sqrt(float64(fanIn))
		return func() float64 { return (2*r.Float64() - 1) * b }
	}
	anchor := AnchorInit(w, numW, a.Anchors, a.Layers)
	i := 0
	ws := c.Weights
	ws.InputW = tensor([]int{a.InputWidth, 2 * numW}, func() float64 { i++; return float64(anchor[i-1]) })
	ws.InputB = tensor([]int{a.InputWidth}, uniform(2*numW))
	ws.Lin1W = tensor([]int{a.Hidden, a.InputWidth}, uniform(a.InputWidth))
	ws.Lin1B = tensor([]int{a.Hidden}, uniform(a.InputWidth))
	ws.LN1W = tensor([]int{a.Hidden}, func() float64 { return 1 })
	ws.LN1B = tensor([]int{a.Hidden}, func() float64 { return 0 })
	ws.Lin2W = tensor([]int{a.Hidden, a.Hidden}, uniform(a.Hidden))
	ws.Lin2B = tensor([]int{a.Hidden}, uniform(a.Hidden))
	ws.LN2W = tensor([]int{a.Hidden}, func() float64 { return 1 })
	ws.LN2B = tensor([]int{a.Hidden}, func() float64 { return 0 })
	ws.OutW = tensor([]int{a.OutputWidth(), a.Hidden}, uniform(a.Hidden))
	ws.OutB = tensor([]int{a.OutputWidth()}, uniform(a.Hidden))
	return c
}
