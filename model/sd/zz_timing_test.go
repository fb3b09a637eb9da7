package sd

import (
	"testing"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/vk"
)

func TestZZTiming(t *testing.T) {
	dev, err := vk.NewDevice(vk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m := fixtureModel(t, "sd-shapes")
	o := UNetOptions{Batch: 2, Height: 16, Width: 16}
	ug, _ := m.unetGraph(&o)
	dg, _ := m.decoderGraph(16, 16)
	for _, c := range []struct{g *graph.Graph; w graph.WeightSource}{{ug, m.UNetWeights()},{dg, m.VAEWeights()}} {
	p, err := graph.Compile(dev, c.g, c.w, graph.Options{Profile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.Now()
	p.Run()
	t.Logf("run %v %+v", time.Since(t0), p.Stats())
	prof, _ := p.Profile()
	for _, o := range prof[:4] {
		t.Logf("%-12s %4d %v", o.Op, o.Count, o.Time)
	}
	}
}
