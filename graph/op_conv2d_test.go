package graph

import (
	"math/rand"
	"testing"

	"github.com/neti-project/neti/vk"
)

func TestConv2d(t *testing.T) {
	pads := func(sh, sw, top, left, bottom, right int) Conv2dParams {
		return Conv2dParams{StrideH: sh, StrideW: sw, PadTop: top, PadLeft: left, PadBottom: bottom, PadRight: right}
	}
	for _, s := range []struct {
		name          string
		n, c, h, w, o int
		kh, kw        int
		p             Conv2dParams
		bias          bool
		initW         float32 // scale of the random weights (0: 1)
	}{
		{name: "1x1_unit", n: 1, c: 1, h: 1, w: 1, o: 1, kh: 1, kw: 1, p: Pad(1, 0), bias: true},
		{name: "1x1", n: 1, c: 3, h: 5, w: 7, o: 4, kh: 1, kw: 1, p: Pad(1, 0), bias: true},
		{name: "1x1_tiles", n: 2, c: 67, h: 9, w: 15, o: 70, kh: 1, kw: 1, p: Pad(1, 0)},
		{name: "3x3_s1p1", n: 2, c: 5, h: 9, w: 11, o: 7, kh: 3, kw: 3, p: Pad(1, 1), bias: true},
		{name: "3x3_s1p1_1px", n: 1, c: 2, h: 1, w: 1, o: 3, kh: 3, kw: 3, p: Pad(1, 1), bias: true},
		{name: "3x3_s1p0", n: 1, c: 3, h: 3, w: 4, o: 2, kh: 3, kw: 3, p: Pad(1, 0)},
		{name: "3x3_s2p1", n: 1, c: 6, h: 13, w: 10, o: 9, kh: 3, kw: 3, p: Pad(2, 1), bias: true},
		{name: "3x3_s2p1_batch", n: 2, c: 17, h: 20, w: 19, o: 65, kh: 3, kw: 3, p: Pad(2, 1)},
		{name: "3x3_s2_pad0101", n: 1, c: 8, h: 16, w: 16, o: 8, kh: 3, kw: 3, p: pads(2, 2, 0, 0, 1, 1), bias: true},
		{name: "3x3_s2_pad0101_odd", n: 2, c: 3, h: 7, w: 9, o: 5, kh: 3, kw: 3, p: pads(2, 2, 0, 0, 1, 1), bias: true},
		{name: "3x3_s1_asym", n: 1, c: 4, h: 6, w: 5, o: 3, kh: 3, kw: 3, p: pads(1, 1, 2, 0, 0, 1)},
		{name: "5x3_mixed_stride", n: 2, c: 4, h: 10, w: 8, o: 6, kh: 5, kw: 3, p: pads(2, 1, 2, 1, 2, 1), bias: true},
		{name: "3x3_o17_tm2", n: 1, c: 6, h: 10, w: 9, o: 17, kh: 3, kw: 3, p: Pad(1, 1), bias: true},
		{name: "3x3_o33_tm4", n: 1, c: 2, h: 5, w: 70, o: 33, kh: 3, kw: 3, p: Pad(1, 1)},
		{name: "1x1_s2", n: 1, c: 9, h: 11, w: 11, o: 10, kh: 1, kw: 1, p: Pad(2, 0), bias: true},
		// More pixels than one CPU workgroup covers (SG x PX = 8 x 16 on lavapipe), the last block
		// partly empty, and channel counts between the CPU kernel's blocks.
		{name: "3x3_2blocks_o12", n: 1, c: 3, h: 20, w: 23, o: 12, kh: 3, kw: 3, p: Pad(1, 1), bias: true},
		{name: "3x3_s2_o40", n: 2, c: 5, h: 37, w: 30, o: 40, kh: 3, kw: 3, p: Pad(2, 1)},
		// Tiny SD UNet conv_in and a VAE-sized block conv: realistic channel
		// counts with a small image so lavapipe stays quick.
		{name: "unet_tiny_conv_in", n: 2, c: 4, h: 16, w: 16, o: 32, kh: 3, kw: 3, p: Pad(1, 1), bias: true},
		{name: "vae_128ch", n: 1, c: 128, h: 16, w: 16, o: 128, kh: 3, kw: 3, p: Pad(1, 1), bias: true, initW: 0.03},
	} {
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(kernels+"/"+s.name, func(t *testing.T) {
				init := map[string]func(*rand.Rand, int) []float32{}
				if s.initW != 0 {
					init["w"] = func(r *rand.Rand, n int) []float32 { return randVec(r, n, s.initW) }
				}
				runOpCase(t, opCase{
					name: caseName("conv2d", s.name),
					build: func(b *Builder) {
						x := b.Input("x", s.n, s.c, s.h, s.w)
						w := b.Input("w", s.o, s.c, s.kh, s.kw)
						var bias *Tensor
						if s.bias {
							bias = b.Input("bias", s.o)
						}
						b.Output("y", b.Conv2d(x, w, bias, s.p))
					},
					init:    init,
					kernels: kernels,
				})
			})
		}
	}
}

// TestConv2dChain runs three convolutions back to back, so each reads what
// the previous one wrote (barrier placement and memory reuse).
func TestConv2dChain(t *testing.T) {
	for _, kernels := range []string{"gpu", "cpu"} {
		t.Run(kernels, func(t *testing.T) {
			runOpCase(t, opCase{
				name: "conv2d_chain",
				build: func(b *Builder) {
					x := b.Input("x", 2, 3, 12, 12)
					h := b.Conv2d(x, b.Input("w1", 8, 3, 3, 3), b.Input("b1", 8), Pad(1, 1))
					h = b.Conv2d(h, b.Input("w2", 8, 8, 3, 3), nil, Conv2dParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1})
					b.Output("y", b.Conv2d(h, b.Input("w3", 5, 8, 1, 1), b.Input("b3", 5), Pad(1, 0)))
				},
				kernels: kernels,
			})
		})
	}
}

func TestConv2dShapeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		x, w []int
		bias int
		p    Conv2dParams
	}{
		{"channels", []int{1, 3, 8, 8}, []int{4, 2, 3, 3}, 0, Pad(1, 1)},
		{"rank", []int{3, 8, 8}, []int{4, 3, 3, 3}, 0, Pad(1, 1)},
		{"kernel_too_big", []int{1, 3, 2, 2}, []int{4, 3, 3, 3}, 0, Pad(1, 0)},
		{"zero_stride", []int{1, 3, 8, 8}, []int{4, 3, 3, 3}, 0, Pad(0, 1)},
		{"negative_pad", []int{1, 3, 8, 8}, []int{4, 3, 3, 3}, 0, Conv2dParams{StrideH: 1, StrideW: 1, PadTop: -1}},
		{"bias", []int{1, 3, 8, 8}, []int{4, 3, 3, 3}, 5, Pad(1, 1)},
	} {
		b := NewBuilder()
		var bias *Tensor
		if c.bias > 0 {
			bias = b.Input("bias", c.bias)
		}
		b.Output("y", b.Conv2d(b.Input("x", c.x...), b.Input("w", c.w...), bias, c.p))
		if _, err := b.Build(); err == nil {
			t.Errorf("%s: no build error", c.name)
		}
	}
}

// TestConvCPUFor checks the CPU kernels' channel blocks (a power of two
// from one subgroup to 64, so few pipelines cover every convolution), their
// pixel blocks (16 per lane, down to 4 for small images) and that devices
// without subgroup broadcasts keep the GPU kernels.
func TestConvCPUFor(t *testing.T) {
	lavapipe := vk.DeviceInfo{Type: "cpu", SubgroupSize: 8, SubgroupOps: []string{"basic", "vote", "ballot"}}
	wide := vk.DeviceInfo{Type: "cpu", SubgroupSize: 32, SubgroupOps: []string{"basic", "ballot"}}
	gpu := vk.DeviceInfo{Type: "discrete", SubgroupSize: 32, SubgroupOps: []string{"basic", "ballot"}}
	for _, c := range []struct {
		name     string
		info     vk.DeviceInfo
		channels int
		pixels   int
		want     convCPU
		ok       bool
	}{
		{"conv_out", lavapipe, 4, 256, convCPU{oc: 8, px: 16, sg: 8}, true},
		{"8", lavapipe, 8, 256, convCPU{oc: 8, px: 16, sg: 8}, true},
		{"9", lavapipe, 9, 256, convCPU{oc: 16, px: 16, sg: 8}, true},
		{"17", lavapipe, 17, 256, convCPU{oc: 32, px: 16, sg: 8}, true},
		{"33", lavapipe, 33, 256, convCPU{oc: 64, px: 16, sg: 8}, true},
		{"320", lavapipe, 320, 4096, convCPU{oc: 64, px: 16, sg: 8}, true},
		// Small images: blocks of 64 or 32 pixels, never fewer than 4 per lane.
		{"8x8", lavapipe, 64, 64, convCPU{oc: 64, px: 8, sg: 8}, true},
		{"65px", lavapipe, 64, 65, convCPU{oc: 64, px: 16, sg: 8}, true},
		{"4x4", lavapipe, 64, 16, convCPU{oc: 64, px: 4, sg: 8}, true},
		{"1px", lavapipe, 64, 1, convCPU{oc: 64, px: 4, sg: 8}, true},
		{"subgroup_32", wide, 4, 256, convCPU{oc: 32, px: 8, sg: 32}, true},
		// GPUs (tests only): small blocks that compile quickly.
		{"gpu_320", gpu, 320, 4096, convCPU{oc: 32, px: 4, sg: 32}, true},
		{"gpu_conv_out", gpu, 4, 64, convCPU{oc: 32, px: 4, sg: 32}, true},
		{"no_ballot", vk.DeviceInfo{Type: "cpu", SubgroupSize: 8, SubgroupOps: []string{"basic"}}, 64, 256, convCPU{}, false},
		{"no_subgroups", vk.DeviceInfo{}, 64, 256, convCPU{}, false},
		{"subgroup_not_pow2", vk.DeviceInfo{SubgroupSize: 12, SubgroupOps: []string{"ballot"}}, 64, 256, convCPU{}, false},
		{"subgroup_128", vk.DeviceInfo{SubgroupSize: 128, SubgroupOps: []string{"ballot"}}, 64, 256, convCPU{}, false},
	} {
		got, ok := convCPUFor(c.info, c.channels, c.pixels)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: convCPUFor = %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
