package plugin

import (
	"fmt"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

// TestMapperSDTiny checks the CPU mapper against NeTI's own outputs on the
// sd-tiny fixture grid, with and without truncation.
func TestMapperSDTiny(t *testing.T) {
	c := loadSDTiny(t)
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := m.Case("neti_mapper")
	if err != nil {
		t.Fatal(err)
	}
	var ts, ls []float64
	var truncs []int
	if err := cs.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	if err := cs.Input("unet_layers", &ls); err != nil {
		t.Fatal(err)
	}
	if err := cs.Input("truncation_idxs", &truncs); err != nil {
		t.Fatal(err)
	}
	var ns float64
	if err := cs.Param("norm_scale", &ns); err != nil {
		t.Fatal(err)
	}
	if float32(ns) != float32(c.NormScale) {
		t.Fatalf("norm scale %v, manifest %v", c.NormScale, ns)
	}
	type row struct {
		output string
		trunc  int
	}
	rows := []row{{"output", -1}}
	for _, k := range truncs {
		rows = append(rows, row{fmt.Sprintf("output_trunc_%d", k), k})
	}
	d := c.Arch.TextWidth
	for _, r := range rows {
		t.Run(r.output, func(t *testing.T) {
			want, shape, err := cs.OutputTensor(r.output)
			if err != nil {
				t.Fatal(err)
			}
			if shape[0] != len(ts) || shape[1] != 2*d {
				t.Fatalf("shape %v", shape)
			}
			for i := range ts {
				tok, byp := c.Mapper(ts[i], ls[i], r.trunc)
				got := append(append([]float32{}, tok...), byp...)
				if e := relErr(got, want[i*2*d:(i+1)*2*d]); e > 1e-5 {
					t.Errorf("t=%v layer=%v: relative error %.3g", ts[i], ls[i], e)
				}
			}
		})
	}
	t.Run("hidden", func(t *testing.T) {
		want, shape, err := cs.OutputTensor("hidden")
		if err != nil {
			t.Fatal(err)
		}
		h := shape[1]
		s := newScratch(c)
		for i := range ts {
			hid, _ := c.forward(s, ts[i], ls[i], -1)
			got := make([]float32, h)
			for j := range got {
				got[j] = float32(hid[j])
			}
			if e := relErr(got, want[i*h:(i+1)*h]); e > 1e-5 {
				t.Errorf("t=%v layer=%v: hidden relative error %.3g", ts[i], ls[i], e)
			}
		}
	})
	t.Run("pe_first32", func(t *testing.T) {
		want, _, err := cs.OutputTensor("pe_first32")
		if err != nil {
			t.Fatal(err)
		}
		n := 2 * c.Fourier.NumW
		pe := make([]float64, n)
		for i := 0; i < 32; i++ {
			encode(pe, c.Fourier.W, c.Fourier.NumW, ts[i], ls[i])
			got := make([]float32, n)
			for j := range got {
				got[j] = float32(pe[j])
			}
			if e := relErr(got, want[i*n:(i+1)*n]); e > 1e-5 {
				t.Errorf("row %d: relative error %.3g", i, e)
			}
		}
	})
}

func TestMapperRejectsMalformed(t *testing.T) {
	good := loadSDTiny(t)
	tests := []struct {
		name string
		mod  func(c *Concept)
	}{
		{"embedding kind", func(c *Concept) { c.Kind = KindEmbedding }},
		{"no weights", func(c *Concept) { c.Weights = nil }},
		{"short W", func(c *Concept) { c.Fourier.W = c.Fourier.W[:10] }},
		{"short output layer", func(c *Concept) { c.Weights.OutW.Data = c.Weights.OutW.Data[:5] }},
		{"wrong hidden", func(c *Concept) { c.Arch.Hidden = 64 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := *good
			w := *good.Weights
			c.Weights = &w
			tc.mod(&c)
			if tok, byp := c.Mapper(500, 3, -1); tok != nil || byp != nil {
				t.Fatalf("mapper returned output for a malformed concept")
			}
		})
	}
}

func TestAnchorInit(t *testing.T) {
	c := loadSDTiny(t)
	a := AnchorInit(c.Fourier.W, c.Fourier.NumW, 10, 16)
	if len(a) != 160*2048 {
		t.Fatalf("len %d", len(a))
	}
	// Row ti*16+l must be the encoding of (100*ti, l).
	pe := make([]float64, 2048)
	for _, r := range []struct{ ti, l int }{{0, 0}, {3, 7}, {9, 15}} {
		encode(pe, c.Fourier.W, 1024, float64(100*r.ti), float64(r.l))
		row := a[(r.ti*16+r.l)*2048:][:2048]
		for j := range pe {
			if row[j] != float32(pe[j]) {
				t.Fatalf("row (%d,%d) col %d: %v vs %v", r.ti, r.l, j, row[j], pe[j])
			}
		}
	}
	// The fixture mapper was trained briefly from this initialisation, so
	// its input layer must still be close to it.
	if e := relErr(c.Weights.InputW.Data, a); e > 0.5 {
		t.Errorf("sd-tiny input layer is %.3g away from the anchor init", e)
	}
	t.Logf("sd-tiny input layer relative distance from anchor init: %.4g", relErr(c.Weights.InputW.Data, a))
	for _, bad := range [][4]int{{0, 10, 16, 0}, {1024, 0, 16, 0}, {1024, 10, 0, 0}, {4096, 10, 16, 0}} {
		if AnchorInit(c.Fourier.W, bad[0], bad[1], bad[2]) != nil {
			t.Errorf("AnchorInit(%v) accepted bad sizes", bad)
		}
	}
}
