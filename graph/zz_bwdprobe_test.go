package graph

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/neti-project/neti/vk"
	"syscall"
)

func TestZZBwdProbe(t *testing.T) {
	var s attnShape
	var l attnBwdLayout
	var which string
	fmt.Sscan(os.Getenv("PROBE"), &which, &s.batch, &s.nq, &s.nk, &s.heads, &s.dh, &s.dhv, &l.wg, &l.lanes, &l.rows)
	op := attnOpOf(t, s)
	b := NewBuilder()
	q := b.Input("q", s.batch, s.nq, s.heads*s.dh)
	k := b.Input("k", s.batch, s.nk, s.heads*s.dh)
	v := b.Input("v", s.batch, s.nk, s.heads*s.dhv)
	dout := b.Input("dout", s.batch, s.nq, s.heads*s.dhv)
	out := b.Input("out", s.batch, s.nq, s.heads*s.dhv)
	st := b.Input("st", s.batch, s.heads, s.nq, 2)
	switch which {
	case "stats":
		b.Output("y", b.attnBackwardStats(op, q, k, out, dout, l))
	case "q":
		b.Output("y", b.attnBackwardQ(op, q, k, v, dout, st, l))
	case "kv":
		b.Output("y", b.attnBackwardKV(op, q, k, v, dout, st, l))
	case "fwd":
		b.Output("y", b.Attention(q, k, v, s.heads, 0, false))
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	dev := device(t)
	if os.Getenv("NOVAL") != "" {
		d, err := vk.NewDevice(vk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		dev = d
	}
	var rc0, rc1 syscall.Rusage
	syscall.Getrusage(0, &rc0)
	t0 := time.Now()
	p, err := Compile(dev, g, nil, Options{})
	syscall.Getrusage(0, &rc1)
	tc := time.Since(t0)
	t.Logf("compile wall %v cpu %v", tc, time.Duration((rc1.Utime.Nano()+rc1.Stime.Nano())-(rc0.Utime.Nano()+rc0.Stime.Nano())))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	syscall.Getrusage(0, &rc0)
	t0 = time.Now()
	p.Run()
	syscall.Getrusage(0, &rc1)
	t.Logf("first run wall %v cpu %v", time.Since(t0), time.Duration((rc1.Utime.Nano()+rc1.Stime.Nano())-(rc0.Utime.Nano()+rc0.Stime.Nano())))
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(0, &ru0)
	t1 := time.Now()
	for i := 0; i < 3; i++ {
		p.Run()
	}
	syscall.Getrusage(0, &ru1)
	cpu := time.Duration((ru1.Utime.Nano()+ru1.Stime.Nano())-(ru0.Utime.Nano()+ru0.Stime.Nano())) / 3
	t.Logf("%s run %v cpu %v", which, time.Since(t1)/3, cpu)
}
