package sd

import (
	"fmt"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/vk"
)

// Limits are what a device allows: graph's per-buffer and per-binding
// limits, and a memory budget for the programs of one pipeline.
type Limits struct {
	graph.Limits
	Budget int64 // device memory the programs may plan together (0: no limit)
}

// DeviceLimits reads the limits of a device. The budget is three quarters
// of the largest device-local heap: drivers keep some for themselves.
func DeviceLimits(info vk.DeviceInfo) Limits {
	return Limits{Limits: graph.LimitsOf(info), Budget: int64(info.HeapBytes / 4 * 3)}
}

// PlanTextEncoder, PlanUNet and PlanDecoder compute the memory plans the
// Compile* calls would allocate, without a device (for --dry-run and for
// full-size models on small machines).
func (m *Model) PlanTextEncoder(o TextEncoderOptions, l Limits) (graph.Stats, error) {
	g, err := m.textGraph(o)
	if err != nil {
		return graph.Stats{}, err
	}
	return m.planned("text encoder", g, l)
}

// PlanUNet plans a UNet program.
func (m *Model) PlanUNet(o UNetOptions, l Limits) (graph.Stats, error) {
	g, err := m.unetGraph(&o)
	if err != nil {
		return graph.Stats{}, err
	}
	return m.planned("unet", g, l)
}

// PlanDecoder plans the decoder for an h x w latent, tiled when
// CompileDecoder would tile; the tiling chosen is returned too.
func (m *Model) PlanDecoder(h, w int, o DecoderOptions, l Limits) (graph.Stats, Tiling, error) {
	t, err := m.chooseTiling(h, w, o, l)
	if err != nil {
		return graph.Stats{}, Tiling{}, err
	}
	g, err := m.decoderGraph(t.H, t.W)
	if err != nil {
		return graph.Stats{}, Tiling{}, err
	}
	st, err := m.planned("vae decoder", g, l)
	return st, t, err
}

func (m *Model) planned(what string, g *graph.Graph, l Limits) (graph.Stats, error) {
	st, err := graph.Plan(g, l.Limits, m.GraphOptions(l.Limits))
	if err != nil {
		return graph.Stats{}, fmt.Errorf("sd: plan %s: %w", what, err)
	}
	return st, nil
}

// MiB formats a byte count for messages.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
