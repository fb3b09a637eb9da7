package graph

import (
	"fmt"
	"math"
)

// Weight precision. Weights are the bulk of a diffusion model's device
// memory (SD 1.5's UNet: 3.4 GB in fp32), so on devices with 16-bit storage
// the executor may keep them as float16, halving that. Only the large
// weights are stored so (matmul's B operand, conv2d's and its input
// gradient's filter, embedding tables), and only where every consumer is
// one of those operands; the kernels (storage.glsl) convert each element
// to float as they load it, so arithmetic and accumulation stay fp32 and
// only the rounding of the stored weights differs from the fp32 path.
// Biases and norm scales stay fp32: they are small.
const (
	// WeightsF32 stores every weight as float32 (the default).
	WeightsF32 = "f32"
	// WeightsF16 stores eligible weights as float16 where the device has
	// 16-bit storage (vk.Device.F16), and as float32 elsewhere.
	WeightsF16 = "f16"
)

// Activation precision. On devices with 16-bit storage the executor may
// also keep activations, inputs and outputs as float16, halving the
// activation memory and the traffic of the memory-bound ops. A tensor is
// stored so only where every kernel that writes or reads it declares the
// binding through shaders/storage.glsl (the op implements halfStorage);
// the kernels load float16 as float and round only what they store, so all
// arithmetic and accumulation stay fp32, and scratch (norm statistics,
// attention statistics) stays fp32. SetInput and Output convert. Training
// graphs keep fp32 where a backward kernel reads a tensor.
const (
	// ActivationsF32 stores every activation as float32 (the default).
	ActivationsF32 = "f32"
	// ActivationsF16 stores eligible activations, inputs and outputs as
	// float16 where the device has 16-bit storage.
	ActivationsF16 = "f16"
)

// halfStorage is implemented by ops whose every kernel declares its
// bindings through storage.glsl: halfIn says whether input i may be stored
// as float16, halfOut the output.
type halfStorage interface {
	halfIn(i int) bool
	halfOut() bool
}

// checkPrecision validates Options.Weights and Options.Activations.
func checkPrecision(o Options) error {
	switch o.Weights {
	case "", WeightsF32, WeightsF16:
	default:
		return fmt.Errorf("graph: weight precision %q: want %q or %q", o.Weights, WeightsF32, WeightsF16)
	}
	switch o.Activations {
	case "", ActivationsF32, ActivationsF16:
	default:
		return fmt.Errorf("graph: activation precision %q: want %q or %q", o.Activations, ActivationsF32, ActivationsF16)
	}
	return nil
}

// halfActivations picks the activations, inputs and outputs stored as
// float16: those that every kernel touching them can store so. Tensors
// that assignments copy keep float32 (the copy moves 4-byte elements).
func halfActivations(g *Graph) map[int]bool {
	half := map[int]bool{}
	for _, t := range g.Tensors {
		if t.view == nil && (t.kind == Activation || t.kind == Input) {
			half[t.id] = true
		}
	}
	for _, n := range g.Nodes {
		hs, ok := n.Op.(halfStorage)
		if !ok || !hs.halfOut() {
			delete(half, n.Out.root().id)
		}
		for i, t := range n.In {
			if !ok || !hs.halfIn(i) {
				delete(half, t.root().id)
			}
		}
	}
	for _, a := range g.Assigns {
		delete(half, a.Src.root().id)
		delete(half, a.Dst.root().id)
	}
	return half
}

// storageBytes is the device size of n values: float32, or float16 padded
// to a whole 4-byte word.
func storageBytes(n int, half bool) int64 {
	if half {
		return (int64(n)*2 + 3) &^ 3
	}
	return int64(n) * 4
}

// halfOperand says whether input i of n is a large-weight operand that its
// kernels can read as float16.
func halfOperand(n *Node, i int) bool {
	switch n.Op.(type) {
	case matmulOp, conv2dOp, conv2dBwdInputOp:
		return i == 1
	case embeddingOp:
		return i == 0
	}
	return false
}

// halfWeights picks the weights stored as float16: every read of them (or of
// a view of them) goes through a large-weight operand (halfOperand).
func halfWeights(g *Graph) map[int]bool {
	half := map[int]bool{}
	bad := map[int]bool{}
	for _, n := range g.Nodes {
		for i, t := range n.In {
			r := t.root()
			if r.kind != Weight {
				continue
			}
			if halfOperand(n, i) {
				half[r.id] = true
			} else {
				bad[r.id] = true
			}
		}
	}
	for _, o := range g.Outputs {
		bad[o.root().id] = true
	}
	for _, a := range g.Assigns {
		bad[a.Src.root().id] = true
		bad[a.Dst.root().id] = true
	}
	for id := range bad {
		delete(half, id)
	}
	return half
}

// f16Bits rounds a float32 to the nearest float16 (ties to even), with
// overflow to infinity and gradual underflow, as the GPU's conversion does.
func f16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // inf or NaN (keep NaN a NaN)
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15:
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		e := uint32(exp-127+15) << 10
		v := e | man>>13
		rest := man & 0x1fff
		if rest > 0x1000 || rest == 0x1000 && v&1 == 1 {
			v++ // may carry into the exponent, up to infinity: correct
		}
		return sign | uint16(v)
	case exp-127 >= -25: // subnormal half
		man |= 0x800000
		shift := uint32(-(exp - 127) - 14 + 13)
		v := man >> shift
		rest := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || rest == half && v&1 == 1 {
			v++
		}
		return sign | uint16(v)
	}
	return sign
}

// f16Value is the float32 value of half-precision bits.
func f16Value(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		v := float32(man) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// roundF16 rounds values to float16 and back, in place: what a weight
// stored as float16 reads as (for references that model the fp16 path).
func roundF16(v []float32) {
	for i, x := range v {
		v[i] = f16Value(f16Bits(x))
	}
}
