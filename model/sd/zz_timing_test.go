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
	m := fixtureModel(t, "sd-tiny")
	g, err := m.decoderGraph(16, 16)
	if err != nil {
		t.Fatal(err)
	}
	p, err := graph.Compile(dev, g, m.VAEWeights(), graph.Options{Profile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetInput(InLatent, make([]float32, 4*16*16))
	t0 := time.Now()
	p.Run()
	t.Logf("run %v", time.Since(t0))
	prof, err := p.Profile()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range prof {
		t.Logf("%-12s %4d %v", o.Op, o.Count, o.Time)
	}
}
