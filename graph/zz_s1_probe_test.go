package graph

import (
	"testing"
	"time"
)

func BenchmarkS1Probe(b *testing.B) {
	for _, c := range []struct {
		name string
		f    func(bl *Builder)
	}{
		{"ln_rows8192_d3", func(bl *Builder) {
			bl.Output("y", bl.LayerNorm(bl.Input("x", 8192, 3), bl.Input("g", 3), bl.Input("b", 3), 1e-5))
		}},
		{"zz_gn_8192groups", func(bl *Builder) {
			bl.Output("y", bl.GroupNorm(bl.Input("x", 1, 8192), bl.Input("g", 8192), bl.Input("b", 8192), 8192, 1e-5, false))
		}},
		{"gn_vae_1x128x128x128", func(bl *Builder) {
			bl.Output("y", bl.GroupNorm(bl.Input("x", 1, 128, 128, 128), bl.Input("g", 128), bl.Input("b", 128), 32, 1e-5, true))
		}},
		{"act_8192x256", func(bl *Builder) {
			bl.Output("y", bl.SiLU(bl.Input("x", 8192*256)))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			t0 := time.Now()
			benchProgram(b, 1, c.f)
			_ = t0
		})
	}
}
