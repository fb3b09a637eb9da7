package neti

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/plugin"
)

// tinyConcept loads sd-tiny's NeTI mapper (neti/mapper.safetensors and
// mapper_config.json) as a concept.
func tinyConcept(t testing.TB) *plugin.Concept {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(m.Root(), "neti")
	raw, err := os.ReadFile(filepath.Join(dir, "mapper_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		OutputDim   int     `json:"output_dim"`
		NormScale   float64 `json:"norm_scale"`
		NumW        int     `json:"pe_num_w"`
		Placeholder string  `json:"placeholder_token"`
		Super       string  `json:"super_category_token"`
		Sigmas      struct {
			T float64 `json:"sigma_t"`
			L float64 `json:"sigma_l"`
		} `json:"pe_sigmas"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "mapper.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &plugin.Concept{
		Kind: plugin.KindNeTI, Token: cfg.Placeholder, SuperCategory: cfg.Super,
		NormScale: cfg.NormScale, BypassAlpha: plugin.DefaultBypassAlpha,
		Arch:    plugin.DefaultArch(cfg.OutputDim),
		Weights: &plugin.MapperWeights{},
	}
	w, _, err := f.Float32("encoder.w")
	if err != nil {
		t.Fatal(err)
	}
	c.Fourier = plugin.Fourier{SigmaT: cfg.Sigmas.T, SigmaL: cfg.Sigmas.L, NumW: cfg.NumW, W: w}
	for _, nt := range c.Weights.Named() {
		v, shape, err := f.Float32(nt.Name)
		if err != nil {
			t.Fatal(err)
		}
		*nt.Tensor = plugin.Tensor{Shape: shape, Data: v}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}
