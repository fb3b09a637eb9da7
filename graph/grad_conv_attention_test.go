package graph

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/neti-project/neti/vk"
)

func convParams(sh, sw, top, left, bottom, right int) Conv2dParams {
	return Conv2dParams{StrideH: sh, StrideW: sw, PadTop: top, PadLeft: left, PadBottom: bottom, PadRight: right}
}

type convShape struct {
	name          string
	n, c, h, w, o int
	kh, kw        int
	p             Conv2dParams
}

// convOpOf returns the op Builder.Conv2d makes for s, so tests use the
// builder's own output-size arithmetic.
func convOpOf(t *testing.T, s convShape) conv2dOp {
	t.Helper()
	b := NewBuilder()
	y := b.Conv2d(b.Input("x", s.n, s.c, s.h, s.w), b.Input("w", s.o, s.c, s.kh, s.kw), nil, s.p)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	return y.node.Op.(conv2dOp)
}

func TestConv2dBwdInput(t *testing.T) {
	for _, s := range []convShape{
		{name: "1x1_unit", n: 1, c: 1, h: 1, w: 1, o: 1, kh: 1, kw: 1, p: Pad(1, 0)},
		{name: "1x1", n: 1, c: 3, h: 5, w: 7, o: 4, kh: 1, kw: 1, p: Pad(1, 0)},
		{name: "1x1_tiles", n: 2, c: 70, h: 9, w: 15, o: 67, kh: 1, kw: 1, p: Pad(1, 0)},
		{name: "3x3_s1p1", n: 2, c: 5, h: 9, w: 11, o: 7, kh: 3, kw: 3, p: Pad(1, 1)},
		{name: "3x3_s1p1_1px", n: 1, c: 2, h: 1, w: 1, o: 3, kh: 3, kw: 3, p: Pad(1, 1)},
		{name: "3x3_s1p0", n: 1, c: 3, h: 3, w: 4, o: 2, kh: 3, kw: 3, p: Pad(1, 0)},
		// (h + pads - kh) not a multiple of the stride: the last rows and
		// columns of x are in no window and must get zeros.
		{name: "3x3_s2p1_uneven", n: 1, c: 6, h: 12, w: 10, o: 9, kh: 3, kw: 3, p: Pad(2, 1)},
		{name: "3x3_s2p1_batch", n: 2, c: 17, h: 20, w: 19, o: 65, kh: 3, kw: 3, p: Pad(2, 1)},
		{name: "3x3_s2_pad0101", n: 1, c: 8, h: 16, w: 16, o: 8, kh: 3, kw: 3, p: convParams(2, 2, 0, 0, 1, 1)},
		{name: "3x3_s2_pad0101_odd", n: 2, c: 3, h: 7, w: 9, o: 5, kh: 3, kw: 3, p: convParams(2, 2, 0, 0, 1, 1)},
		{name: "3x3_s1_asym", n: 1, c: 4, h: 6, w: 5, o: 3, kh: 3, kw: 3, p: convParams(1, 1, 2, 0, 0, 1)},
		{name: "5x3_mixed_stride", n: 2, c: 4, h: 10, w: 8, o: 6, kh: 5, kw: 3, p: convParams(2, 1, 2, 1, 2, 1)},
		// Kernels smaller than the stride: some phases have no taps at all.
		{name: "1x1_s2", n: 1, c: 9, h: 11, w: 11, o: 10, kh: 1, kw: 1, p: Pad(2, 0)},
		{name: "2x2_s3_pad", n: 1, c: 3, h: 8, w: 7, o: 4, kh: 2, kw: 2, p: convParams(3, 3, 1, 2, 0, 1)},
		{name: "3x3_s3", n: 2, c: 4, h: 9, w: 10, o: 5, kh: 3, kw: 3, p: Pad(3, 0)},
		// More pixels per phase than one CPU workgroup covers (SG x PX = 8 x 16 on lavapipe), the
		// last block partly empty, and channel counts between its blocks.
		{name: "3x3_2blocks_c12", n: 1, c: 12, h: 20, w: 23, o: 5, kh: 3, kw: 3, p: Pad(1, 1)},
		{name: "3x3_s2_2blocks_c40", n: 1, c: 40, h: 40, w: 37, o: 6, kh: 3, kw: 3, p: Pad(2, 1)},
		// SD shapes with a small latent: a UNet block conv and a downsampler.
		{name: "unet_320ch_8x8", n: 1, c: 320, h: 8, w: 8, o: 320, kh: 3, kw: 3, p: Pad(1, 1)},
		{name: "unet_down_64ch_16x16", n: 2, c: 64, h: 16, w: 16, o: 64, kh: 3, kw: 3, p: Pad(2, 1)},
	} {
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(kernels+"/"+s.name, func(t *testing.T) {
				op := convOpOf(t, s)
				runOpCase(t, opCase{
					name: caseName("conv2d_bwd_input", s.name),
					build: func(b *Builder) {
						dy := b.Input("dy", op.n, op.o, op.ho, op.wo)
						w := b.Input("w", op.o, op.c, op.kh, op.kw)
						b.Output("dx", b.conv2dBackwardInput(dy, w, op))
					},
					kernels: kernels,
				})
			})
		}
	}
}

// TestConv2dBwdInputChained feeds the gradient of one convolution to the
// next (barriers between the two, memory reuse) and checks that pixels no
// window covers are exactly zero on the device, not just small. The f16w
// runs make the filters weights stored as float16 (the _h variants' only
// half binding: a backward op's activations stay fp32), to the fp16 budget.
func TestConv2dBwdInputChained(t *testing.T) {
	for _, kernels := range []string{"gpu", "cpu"} {
		t.Run(kernels, func(t *testing.T) { checkConv2dBwdInputChained(t, kernels, WeightsF32) })
		t.Run(kernels+"/f16w", func(t *testing.T) {
			if dev := device(t); !dev.F16() {
				t.Skipf("%s has no 16-bit storage", dev.Info().Name)
			}
			checkConv2dBwdInputChained(t, kernels, WeightsF16)
		})
	}
}

func checkConv2dBwdInputChained(t *testing.T, kernels, weights string) {
	dev := device(t)
	s1 := convShape{n: 1, c: 3, h: 10, w: 10, o: 4, kh: 3, kw: 3, p: Pad(2, 0)} // row/col 9 uncovered
	s2 := convShape{n: 1, c: 4, h: 4, w: 4, o: 2, kh: 1, kw: 1, p: Pad(1, 0)}
	op1, op2 := convOpOf(t, s1), convOpOf(t, s2)
	b := NewBuilder()
	filter := b.Input
	if weights == WeightsF16 {
		filter = b.Weight
	}
	dy := b.Input("dy", 1, 2, 4, 4)
	h := b.conv2dBackwardInput(dy, filter("w2", 2, 4, 1, 1), op2)
	b.Output("dx", b.conv2dBackwardInput(h, filter("w1", 4, 3, 3, 3), op1))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	w := map[string][]float32{}
	src := func(name string, shape []int) ([]float32, error) {
		if _, ok := w[name]; !ok {
			w[name] = randVec(rng, numel(shape), 1)
		}
		return w[name], nil
	}
	p, err := Compile(dev, g, src, Options{Kernels: kernels, Weights: weights})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tol := 1e-5
	if weights == WeightsF16 {
		tol = 1e-2
		if p.halfCount() != 2 {
			t.Fatalf("%d filters stored as float16, want 2", p.halfCount())
		}
	}
	in := map[string][]float32{}
	for _, x := range g.Inputs() {
		in[x.Name()] = randVec(rng, x.Numel(), 1)
	}
	want, err := Interpret(g, in, src)
	if err != nil {
		t.Fatal(err)
	}
	runPoisoned(t, p, in)
	got, err := p.Output("dx")
	if err != nil {
		t.Fatal(err)
	}
	if e := RelErr(got, want["dx"]); !(e <= tol) {
		t.Errorf("relative error %.3g > %.1g", e, tol)
	}
	for c := 0; c < 3; c++ {
		for i := 0; i < 10; i++ {
			for _, at := range []int{c*100 + 9*10 + i, c*100 + i*10 + 9} {
				if got[at] != 0 || want["dx"][at] != 0 {
					t.Fatalf("uncovered pixel %d: got %g, want %g (both must be 0)", at, got[at], want["dx"][at])
				}
			}
		}
	}
}

func attnOpOf(t *testing.T, s attnShape) attentionOp {
	t.Helper()
	b := NewBuilder()
	y := s.attend(b, b.Input("q", s.batch, s.nq, s.heads*s.dh), b.Input("k", s.batch, s.nk, s.heads*s.dh),
		b.Input("v", s.batch, s.nk, s.heads*s.dhv))
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	return y.node.Op.(attentionOp)
}

// attnBwdCase runs the three backward passes on their own, fed by the
// forward output, with a given thread layout (zero: the device's).
func attnBwdCase(t *testing.T, s attnShape, layout attnBwdLayout) opCase {
	op := attnOpOf(t, s)
	return opCase{
		name: caseName("attention_bwd", s.batch, s.nq, s.nk, s.heads, s.dh, s.dhv, s.causal, s.offset, s.scale, layout.wg, layout.lanes, layout.rows),
		build: func(b *Builder) {
			q := b.Input("q", s.batch, s.nq, s.heads*s.dh)
			k := b.Input("k", s.batch, s.nk, s.heads*s.dh)
			v := b.Input("v", s.batch, s.nk, s.heads*s.dhv)
			dout := b.Input("dout", s.batch, s.nq, s.heads*s.dhv)
			out := s.attend(b, q, k, v)
			stats := b.attnBackwardStats(op, q, k, out, dout, layout)
			b.Output("stats", stats)
			b.Output("dq", b.attnBackwardQ(op, q, k, v, dout, stats, layout))
			b.Output("dkv", b.attnBackwardKV(op, q, k, v, dout, stats, layout))
		},
	}
}

// The attention backward tests keep to a few head dims: lavapipe compiles
// every kernel variant on first use, in seconds, and these are dims the
// forward tests use too (their forward kernels are then compiled once).
func TestAttentionBwd(t *testing.T) {
	for _, s := range []attnShape{
		// Tiny heads, sizes of 1 and odd sizes.
		{batch: 1, nq: 1, nk: 1, heads: 1, dh: 8, dhv: 8},
		{batch: 1, nq: 1, nk: 1, heads: 1, dh: 8, dhv: 8, causal: true},
		{batch: 2, nq: 5, nk: 7, heads: 3, dh: 8, dhv: 8},
		{batch: 2, nq: 9, nk: 1, heads: 2, dh: 8, dhv: 8},
		{batch: 1, nq: 1, nk: 40, heads: 2, dh: 8, dhv: 8},
		// A value head dim that differs from the key's, not a multiple of 4.
		{batch: 1, nq: 33, nk: 17, heads: 2, dh: 8, dhv: 3},
		// CLIP's causal self-attention; one spanning many blocks.
		{batch: 2, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true},
		{batch: 1, nq: 300, nk: 300, heads: 1, dh: 8, dhv: 8, causal: true},
		// A suffix against a cached prefix (CausalAttention's offset),
		// with key blocks whose first queries start mid-block.
		{batch: 2, nq: 60, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true, offset: 17},
		{batch: 1, nq: 3, nk: 40, heads: 1, dh: 8, dhv: 8, causal: true, offset: 37},
		// Peaked softmax (large scale).
		{batch: 1, nq: 64, nk: 200, heads: 2, dh: 8, dhv: 8, scale: 4},
		// SD 1.5 head dims on small latents: self-attention on 16x16,
		// cross-attention to 77 text tokens, and the largest head dim.
		{batch: 1, nq: 256, nk: 256, heads: 1, dh: 40, dhv: 40},
		{batch: 2, nq: 64, nk: 77, heads: 2, dh: 40, dhv: 40},
		{batch: 1, nq: 64, nk: 64, heads: 1, dh: 160, dhv: 160},
	} {
		c := attnBwdCase(t, s, attnBwdLayout{})
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
}

// TestAttentionBwdLayouts runs the thread layouts a GPU gets (one row per
// thread, rows split over 2 to 8 lanes, big workgroups) on this device: the
// kernels are the same code for every layout, so lavapipe checks them all.
func TestAttentionBwdLayouts(t *testing.T) {
	for _, c := range []struct {
		s attnShape
		l attnBwdLayout
	}{
		{attnShape{batch: 1, nq: 170, nk: 145, heads: 2, dh: 8, dhv: 8}, attnBwdLayout{wg: 128, lanes: 1, rows: 1}},
		{attnShape{batch: 1, nq: 70, nk: 45, heads: 2, dh: 8, dhv: 3}, attnBwdLayout{wg: 64, lanes: 2, rows: 1}},
		{attnShape{batch: 2, nq: 33, nk: 33, heads: 1, dh: 40, dhv: 40, causal: true}, attnBwdLayout{wg: 64, lanes: 4, rows: 1}},
		{attnShape{batch: 1, nq: 150, nk: 170, heads: 2, dh: 8, dhv: 8, causal: true, offset: 20}, attnBwdLayout{wg: 128, lanes: 1, rows: 1}},
		{attnShape{batch: 1, nq: 37, nk: 29, heads: 1, dh: 160, dhv: 160}, attnBwdLayout{wg: 32, lanes: 8, rows: 1}},
	} {
		oc := attnBwdCase(t, c.s, c.l)
		t.Run(oc.name, func(t *testing.T) { runOpCase(t, oc) })
	}
}

// TestAttnBwdLayoutFor checks the layouts picked for every head dim the
// builder accepts against each kernel's limits, for a GPU and for a CPU
// device with lavapipe's limits.
func TestAttnBwdLayoutFor(t *testing.T) {
	for _, typ := range []string{"discrete", "cpu"} {
		info := vk.DeviceInfo{Type: typ, MaxSharedMemory: 32768, MaxWorkgroupInvocations: 1024, MaxWorkgroupSize: [3]uint32{1024, 1024, 64}}
		for _, pass := range []attnBwdPass{passStats, passQ, passKV} {
			for dh := 1; dh <= MaxHeadDim; dh++ {
				for _, dhv := range []int{1, dh, MaxHeadDim + 1 - dh} {
					c, err := attnBwdLayoutFor(pass, dh, dhv, info)
					if err != nil || !c.valid(pass, dh, dhv, info) {
						t.Fatalf("%s pass %d: attnBwdLayoutFor(%d, %d) = %+v, %v", typ, pass, dh, dhv, c, err)
					}
					if typ != "cpu" && c.regs(pass, dh, dhv) > attnBwdRegBudget {
						t.Fatalf("%s pass %d: attnBwdLayoutFor(%d, %d) = %+v keeps %d vec4 per thread", typ, pass, dh, dhv, c, c.regs(pass, dh, dhv))
					}
				}
			}
		}
	}
	tiny := vk.DeviceInfo{MaxSharedMemory: 4096, MaxWorkgroupInvocations: 1024}
	if c, err := attnBwdLayoutFor(passKV, 160, 160, tiny); err == nil {
		t.Errorf("a device with 4 KiB of shared memory got layout %+v for head dim 160", c)
	}
}

func attnGrad(s attnShape, wrt string) func(b *Builder) (*Tensor, []*Tensor) {
	return func(b *Builder) (*Tensor, []*Tensor) {
		q := b.Input("q", s.batch, s.nq, s.heads*s.dh)
		k := b.Input("k", s.batch, s.nk, s.heads*s.dh)
		v := b.Input("v", s.batch, s.nk, s.heads*s.dhv)
		ts := map[string]*Tensor{"q": q, "k": k, "v": v}
		var w []*Tensor
		for _, name := range strings.Split(wrt, ",") {
			w = append(w, ts[name])
		}
		return s.attend(b, q, k, v), w
	}
}

func convGrad(s convShape, bias bool) func(b *Builder) (*Tensor, []*Tensor) {
	return func(b *Builder) (*Tensor, []*Tensor) {
		x := b.Input("x", s.n, s.c, s.h, s.w)
		w := b.Input("w", s.o, s.c, s.kh, s.kw)
		var bt *Tensor
		if bias {
			bt = b.Input("bias", s.o)
		}
		return b.Conv2d(x, w, bt, s.p), []*Tensor{x}
	}
}

func convAttentionGradCases() []gradCase {
	return []gradCase{
		{name: "conv_1x1", build: convGrad(convShape{n: 1, c: 3, h: 4, w: 5, o: 2, kh: 1, kw: 1, p: Pad(1, 0)}, false)},
		{name: "conv_3x3_s1p1_bias", build: convGrad(convShape{n: 1, c: 2, h: 5, w: 6, o: 3, kh: 3, kw: 3, p: Pad(1, 1)}, true)},
		{name: "conv_3x3_s2p1", build: convGrad(convShape{n: 1, c: 2, h: 8, w: 7, o: 3, kh: 3, kw: 3, p: Pad(2, 1)}, false)},
		{name: "conv_3x3_s2_pad0101", build: convGrad(convShape{n: 1, c: 3, h: 6, w: 6, o: 2, kh: 3, kw: 3, p: convParams(2, 2, 0, 0, 1, 1)}, true)},
		{name: "conv_odd_5x3_mixed", build: convGrad(convShape{n: 1, c: 2, h: 7, w: 5, o: 3, kh: 5, kw: 3, p: convParams(2, 1, 2, 1, 1, 0)}, false)},
		{name: "conv_batch2", build: convGrad(convShape{n: 2, c: 3, h: 5, w: 5, o: 4, kh: 3, kw: 3, p: Pad(1, 1)}, true)},
		// A chain, so the second convolution's dx feeds the first's.
		{name: "conv_chain_silu", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := b.Input("x", 1, 2, 6, 6)
			h := b.SiLU(b.Conv2d(x, b.Input("w1", 3, 2, 3, 3), b.Input("b1", 3), Pad(1, 1)))
			return b.Conv2d(h, b.Input("w2", 2, 3, 3, 3), nil, convParams(2, 2, 0, 0, 1, 1)), []*Tensor{x}
		}},
		{name: "attn_tiny_unet", build: attnGrad(attnShape{batch: 1, nq: 3, nk: 4, heads: 2, dh: 4, dhv: 4}, "q,k,v")},
		{name: "attn_clip_causal", build: attnGrad(attnShape{batch: 2, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true}, "q,k,v")},
		{name: "attn_clip_suffix", build: attnGrad(attnShape{batch: 2, nq: 60, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true, offset: 17}, "q,k,v")},
		{name: "attn_cross_64x77", build: attnGrad(attnShape{batch: 1, nq: 64, nk: 77, heads: 2, dh: 8, dhv: 8}, "q,k,v")},
		{name: "attn_dhv_differs", build: attnGrad(attnShape{batch: 1, nq: 9, nk: 11, heads: 2, dh: 8, dhv: 3, scale: 0.7}, "q,k,v")},
		{name: "attn_head40", build: attnGrad(attnShape{batch: 1, nq: 16, nk: 20, heads: 1, dh: 40, dhv: 40}, "q,k,v")},
		// Only the keys and values need gradients (the text side).
		{name: "attn_kv_only", build: attnGrad(attnShape{batch: 1, nq: 12, nk: 7, heads: 2, dh: 8, dhv: 8}, "k,v")},
		// One tensor as q, k and v: the three gradients add up.
		{name: "attn_shared_qkv", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := b.Input("x", 1, 10, 2*8)
			return b.Attention(x, x, x, 2, 0, true), []*Tensor{x}
		}},
	}
}

func TestGradConvAttentionFiniteDifferences(t *testing.T) {
	for _, c := range convAttentionGradCases() {
		t.Run(c.name, func(t *testing.T) { checkFiniteDifferences(t, c) })
	}
}

func TestGradConvAttentionGPU(t *testing.T) {
	for _, c := range convAttentionGradCases() {
		if strings.HasPrefix(c.name, "conv_") {
			continue // TestGradConvKernels
		}
		t.Run(c.name, func(t *testing.T) { checkGradGPU(t, c) })
	}
}

// TestGradConvKernels runs the convolution gradients with both kernel
// families, whichever the device would pick, and again with float16
// activations (the forward convolutions' and elementwise ops' tensors; the
// backward kernels keep theirs fp32).
func TestGradConvKernels(t *testing.T) {
	for _, c := range convAttentionGradCases() {
		if !strings.HasPrefix(c.name, "conv_") {
			continue
		}
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(kernels+"/"+c.name, func(t *testing.T) {
				checkGradKernels(t, c, kernels)
				if !device(t).F16() {
					return
				}
				t.Run("f16", func(t *testing.T) { checkGradWith(t, c, Options{Kernels: kernels, Activations: ActivationsF16}, 1e-2) })
			})
		}
	}
}

func TestConv2dWeightGradRejected(t *testing.T) {
	for _, wrt := range []string{"w", "bias"} {
		b := NewBuilder()
		x, w, bias := b.Input("x", 1, 2, 5, 5), b.Input("w", 3, 2, 3, 3), b.Input("bias", 3)
		y := b.Conv2d(x, w, bias, Pad(1, 1))
		ts := map[string]*Tensor{"w": w, "bias": bias}
		b.Grad(b.Sum(b.Reshape(y, y.Numel()), 0), nil, x, ts[wrt])
		if err := b.Err(); err == nil || !strings.Contains(err.Error(), "conv2d weight gradients are not supported") {
			t.Errorf("gradient for %s: error %v", wrt, err)
		}
	}
}

func TestAttentionBwdShapeErrors(t *testing.T) {
	s := attnShape{batch: 1, nq: 4, nk: 5, heads: 2, dh: 4, dhv: 6}
	op := attnOpOf(t, s)
	b := NewBuilder()
	q, k, v := b.Input("q", 1, 4, 8), b.Input("k", 1, 5, 8), b.Input("v", 1, 5, 12)
	dout := b.Input("dout", 1, 4, 8) // should be [1 4 12]
	b.attnBackwardQ(op, q, k, v, dout, b.Input("stats", 1, 2, 4, 2), attnBwdLayout{})
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), "attention backward") {
		t.Errorf("wrong dout shape: error %v", err)
	}
	b = NewBuilder()
	dy := b.Input("dy", 1, 3, 4, 4)
	op2 := convOpOf(t, convShape{n: 1, c: 2, h: 4, w: 4, o: 3, kh: 3, kw: 3, p: Pad(1, 1)})
	b.conv2dBackwardInput(dy, b.Input("w", 3, 2, 1, 1), op2)
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), "conv2d backward") {
		t.Errorf("wrong weight shape: error %v", err)
	}
}

// BenchmarkAttentionBackward times the three backward passes together and
// reports GFLOPS counted as the five matrix products a backward needs
// (S = QKᵀ, dP = dO·Vᵀ, dV = Pᵀ·dO, dQ = dS·K, dK = dSᵀ·Q:
// 2·nq·nk·(3·dh + 2·dhv) per head); the kernels do more work than that,
// since the stats and dq passes recompute S and dP. The SD 1.5 shape (a
// 64x64 latent: 4096 tokens, 8 heads of 40) takes minutes per run on
// lavapipe; the 1024-token one is the quick measure there.
func BenchmarkAttentionBackward(b *testing.B) {
	for _, s := range []struct {
		name string
		attnShape
	}{
		{"sd15_4096x4096_h8_d40", attnShape{batch: 1, nq: 4096, nk: 4096, heads: 8, dh: 40, dhv: 40}},
		{"sd15_1024x1024_h8_d40", attnShape{batch: 1, nq: 1024, nk: 1024, heads: 8, dh: 40, dhv: 40}},
		{"sd15_cross_1024x77_h8_d40", attnShape{batch: 1, nq: 1024, nk: 77, heads: 8, dh: 40, dhv: 40}},
		{"sd15_256x256_h8_d160", attnShape{batch: 1, nq: 256, nk: 256, heads: 8, dh: 160, dhv: 160}},
		{"clip_77_h12_d64_causal_b2", attnShape{batch: 2, nq: 77, nk: 77, heads: 12, dh: 64, dhv: 64, causal: true}},
	} {
		b.Run(s.name, func(b *testing.B) { benchAttentionBackward(b, s.attnShape) })
	}
}

func benchAttentionBackward(b *testing.B, s attnShape) {
	dev := device(b)
	bl := NewBuilder()
	q := bl.Input("q", s.batch, s.nq, s.heads*s.dh)
	k := bl.Input("k", s.batch, s.nk, s.heads*s.dh)
	v := bl.Input("v", s.batch, s.nk, s.heads*s.dhv)
	dout := bl.Input("dout", s.batch, s.nq, s.heads*s.dhv)
	// The forward output is an input here so that only the backward is timed.
	out := bl.Input("out", s.batch, s.nq, s.heads*s.dhv)
	op := attentionOp{batch: s.batch, nq: s.nq, nk: s.nk, heads: s.heads, dh: s.dh, dhv: s.dhv, scale: 0.125, causal: s.causal}
	stats := bl.attnBackwardStats(op, q, k, out, dout, attnBwdLayout{})
	bl.Output("dq", bl.attnBackwardQ(op, q, k, v, dout, stats, attnBwdLayout{}))
	bl.Output("dkv", bl.attnBackwardKV(op, q, k, v, dout, stats, attnBwdLayout{}))
	g, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(dev, g, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	rng := rand.New(rand.NewSource(1))
	for _, in := range g.Inputs() {
		if err := p.SetInput(in.Name(), randVec(rng, in.Numel(), 1)); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Run(); err != nil { // untimed: warms caches, catches errors
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	flops := 2 * float64(s.batch) * float64(s.heads) * float64(s.nq) * float64(s.nk) * float64(3*s.dh+2*s.dhv)
	if s.causal {
		flops /= 2
	}
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOPS")
	}
}
