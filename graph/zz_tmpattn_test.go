package graph

import (
	"math/rand"
	"os"
	"fmt"
	"testing"
	"time"
	"syscall"
)

func TestZZTmpAttnTiming(t *testing.T) {
	var s attnShape
	fmt.Sscan(os.Getenv("ATTN"), &s.batch, &s.nq, &s.nk, &s.heads, &s.dh, &s.dhv)
	bl := NewBuilder()
	if os.Getenv("MM") != "" {
		bl.Output("y", bl.MatMul(bl.Input("a", 1, 512, 512), bl.Input("b", 1, 512, 512), false, false))
	} else {
		attentionCase(s).build(bl)
	}
	g, _ := bl.Build()
	p, err := Compile(device(t), g, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rng := rand.New(rand.NewSource(1))
	inputs := map[string][]float32{}
	for _, in := range g.Inputs() {
		inputs[in.Name()] = randVec(rng, in.Numel(), 1)
		p.SetInput(in.Name(), inputs[in.Name()])
	}
	p.Run()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(0, &r0)
	st := time.Now()
	p.Run()
	wall := time.Since(st)
	syscall.Getrusage(0, &r1)
	el := time.Duration((r1.Utime.Nano() + r1.Stime.Nano()) - (r0.Utime.Nano() + r0.Stime.Nano()))
	t.Logf("wall %v cpu %v", wall, el)
	fl := 2 * float64(s.batch*s.heads*s.nq*s.nk*(s.dh+s.dhv))
	if os.Getenv("MM") != "" {
		fl = 2 * 512 * 512 * 512
	}
	t.Logf("%+v: %v, %.3f GFLOPS", s, el, fl/el.Seconds()/1e9)
	if os.Getenv("CHECK") != "" {
		want, _ := Interpret(g, inputs, nil)
		got, _ := p.Output("y")
		t.Logf("relerr %.3g", RelErr(got, want["y"]))
	}
}
