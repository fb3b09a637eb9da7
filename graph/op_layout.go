package graph

import (
	"fmt"

	"github.com/neti-project/neti/graph/ref"
)

type concatOp struct{ n, ca, cb, inner int }

func (concatOp) Name() string { return "concat" }

// A copy: each element is loaded as float and stored, so input and output
// may each be float16.
func (concatOp) halfIn(int) bool { return true }
func (concatOp) halfOut() bool   { return true }

// Concat joins x and y along axis (all other dimensions equal), e.g. the
// UNet's skip connections along channels (axis 1).
func (b *Builder) Concat(x, y *Tensor, axis int) *Tensor {
	if !b.check(x, y) {
		return b.dummy([]int{1})
	}
	if axis < 0 {
		axis += x.Rank()
	}
	if x.Rank() != y.Rank() || axis < 0 || axis >= x.Rank() {
		b.Errorf("concat: %s and %s along %d", shapeStr(x.shape), shapeStr(y.shape), axis)
		return b.dummy(x.shape)
	}
	for i := range x.shape {
		if i != axis && x.shape[i] != y.shape[i] {
			b.Errorf("concat: %s and %s differ outside axis %d", shapeStr(x.shape), shapeStr(y.shape), axis)
			return b.dummy(x.shape)
		}
	}
	outer := numel(x.shape[:axis])
	inner := numel(x.shape[axis+1:])
	shape := x.Shape()
	shape[axis] += y.shape[axis]
	return b.add(concatOp{n: outer, ca: x.shape[axis], cb: y.shape[axis], inner: inner}, shape, x, y)
}

func (o concatOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.Concat(in[0], in[1], o.n, o.ca, o.cb, o.inner), nil
}

type sliceOp struct{ outer, axis, inner, start, length int }

func (sliceOp) Name() string { return "slice" }

// A copy: each element is loaded as float and stored, so input and output
// may each be float16.
func (sliceOp) halfIn(int) bool { return true }
func (sliceOp) halfOut() bool   { return true }

// Slice copies x[..., start:end, ...] along axis (e.g. the VAE's mean and
// logvar halves, the mapper's token and bypass halves).
func (b *Builder) Slice(x *Tensor, axis, start, end int) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() || start < 0 || end > x.shape[axis] || start >= end {
		b.Errorf("slice: [%d:%d] along %d of %s", start, end, axis, shapeStr(x.shape))
		return b.dummy(x.shape)
	}
	shape := x.Shape()
	shape[axis] = end - start
	op := sliceOp{outer: numel(x.shape[:axis]), axis: x.shape[axis], inner: numel(x.shape[axis+1:]), start: start, length: end - start}
	return b.add(op, shape, x)
}

func (o sliceOp) eval(n *Node, in [][]float32) ([]float32, error) {
	x := in[0]
	out := make([]float32, 0, o.outer*o.length*o.inner)
	for i := 0; i < o.outer; i++ {
		base := (i*o.axis + o.start) * o.inner
		out = append(out, x[base:base+o.length*o.inner]...)
	}
	return out, nil
}

type upsampleOp struct{ n, c, h, w int }

func (upsampleOp) Name() string { return "upsample" }

// A copy: each element is loaded as float and stored, so input and output
// may each be float16.
func (upsampleOp) halfIn(int) bool { return true }
func (upsampleOp) halfOut() bool   { return true }

// Upsample2x is nearest-neighbour 2x upsampling of x [n, c, h, w].
func (b *Builder) Upsample2x(x *Tensor) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if x.Rank() != 4 {
		b.Errorf("upsample: want [n c h w], got %s", shapeStr(x.shape))
		return b.dummy(x.shape)
	}
	op := upsampleOp{n: x.Dim(0), c: x.Dim(1), h: x.Dim(2), w: x.Dim(3)}
	return b.add(op, []int{op.n, op.c, 2 * op.h, 2 * op.w}, x)
}

func (o upsampleOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.Upsample2x(in[0], o.n, o.c, o.h, o.w), nil
}

type permuteOp struct {
	in   []int
	perm []int
}

func (permuteOp) Name() string { return "permute" }

// A copy: each element is loaded as float and stored, so input and output
// may each be float16.
func (permuteOp) halfIn(int) bool { return true }
func (permuteOp) halfOut() bool   { return true }

// Permute reorders dimensions (a copy), e.g. NCHW <-> N(HW)C around the
// UNet's transformer blocks.
func (b *Builder) Permute(x *Tensor, perm ...int) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if len(perm) != x.Rank() || len(perm) > maxBroadcastRank {
		b.Errorf("permute: %v for %s", perm, shapeStr(x.shape))
		return b.dummy(x.shape)
	}
	seen := make([]bool, len(perm))
	shape := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			b.Errorf("permute: %v is not a permutation", perm)
			return b.dummy(x.shape)
		}
		seen[p] = true
		shape[i] = x.shape[p]
	}
	return b.add(permuteOp{in: x.Shape(), perm: append([]int(nil), perm...)}, shape, x)
}

func (o permuteOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.Permute(in[0], o.in, o.perm), nil
}

type embeddingOp struct{ vocab, d, n int }

func (embeddingOp) Name() string { return "embedding" }

// The ids stay float32: float16 holds whole numbers exactly only up to
// 2048, and token ids reach 49407. The table and the rows it gathers may
// be float16.
func (embeddingOp) halfIn(i int) bool { return i != 1 }
func (embeddingOp) halfOut() bool     { return true }

// Embedding gathers rows of table [vocab, d] at ids (float-coded integers,
// as inputs are float32) -> [ids..., d]. An id outside the table gives a row
// of NaN, so a bad id can never pass silently.
func (b *Builder) Embedding(table, ids *Tensor) *Tensor {
	if !b.check(table, ids) {
		return b.dummy([]int{1})
	}
	if table.Rank() != 2 {
		b.Errorf("embedding: table %s is not 2-D", shapeStr(table.shape))
		return b.dummy([]int{1})
	}
	shape := append(ids.Shape(), table.Dim(1))
	return b.add(embeddingOp{vocab: table.Dim(0), d: table.Dim(1), n: ids.Numel()}, shape, table, ids)
}

func (o embeddingOp) eval(n *Node, in [][]float32) ([]float32, error) {
	ids := make([]int32, len(in[1]))
	for i, v := range in[1] {
		if v < 0 || int(v) >= o.vocab || float32(int32(v)) != v {
			return nil, fmt.Errorf("id %v outside vocabulary of %d", v, o.vocab)
		}
		ids[i] = int32(v)
	}
	return ref.Embedding(in[0], o.vocab, o.d, ids), nil
}

type timestepOp struct {
	n, dim       int
	flipSinToCos bool
	shift        float32
}

func (timestepOp) Name() string { return "timestep" }

// The timesteps stay fp32: float16's spacing near 1000 is 0.5, so a
// fractional timestep (a scheduler's interpolated t) would round. The
// embedding is sin/cos in [-1, 1] and may be float16.
func (timestepOp) halfIn(int) bool { return false }
func (timestepOp) halfOut() bool   { return true }

// TimestepEmbedding is diffusers' sinusoidal embedding of t [n] -> [n, dim]
// (max period 10000, scale 1), with flip_sin_to_cos and
// downscale_freq_shift from the UNet config.
func (b *Builder) TimestepEmbedding(t *Tensor, dim int, flipSinToCos bool, downscaleFreqShift float32) *Tensor {
	if !b.check(t) {
		return b.dummy([]int{1})
	}
	if t.Rank() != 1 || dim < 2 {
		b.Errorf("timestep: want t [n] and dim >= 2, got %s and %d", shapeStr(t.shape), dim)
		return b.dummy([]int{1})
	}
	return b.add(timestepOp{n: t.Dim(0), dim: dim, flipSinToCos: flipSinToCos, shift: downscaleFreqShift}, []int{t.Dim(0), dim}, t)
}

func (o timestepOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.TimestepEmbedding(in[0], o.dim, o.flipSinToCos, float64(o.shift), 1, 10000), nil
}

type reduceOp struct {
	outer, axis, inner int
	mean               bool
}

func (reduceOp) Name() string    { return "reduce" }
func (reduceOp) halfIn(int) bool { return true } // the sums accumulate in fp32
func (reduceOp) halfOut() bool   { return true }

// Sum reduces axis of x (keeping the other dimensions).
func (b *Builder) Sum(x *Tensor, axis int) *Tensor { return b.reduce(x, axis, false) }

// Mean averages over axis of x.
func (b *Builder) Mean(x *Tensor, axis int) *Tensor { return b.reduce(x, axis, true) }

func (b *Builder) reduce(x *Tensor, axis int, mean bool) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() {
		b.Errorf("reduce: axis %d of %s", axis, shapeStr(x.shape))
		return b.dummy([]int{1})
	}
	shape := append(x.Shape()[:axis], x.shape[axis+1:]...)
	if len(shape) == 0 {
		shape = []int{1}
	}
	op := reduceOp{outer: numel(x.shape[:axis]), axis: x.shape[axis], inner: numel(x.shape[axis+1:]), mean: mean}
	return b.add(op, shape, x)
}

func (o reduceOp) eval(n *Node, in [][]float32) ([]float32, error) {
	if o.mean {
		return ref.Mean(in[0], o.outer, o.axis, o.inner), nil
	}
	return ref.Sum(in[0], o.outer, o.axis, o.inner), nil
}

type padOp struct{ outer, axis, inner, start, length int }

func (padOp) Name() string { return "pad" }

// A copy plus zeros: each element is loaded as float and stored, so input
// and output may each be float16.
func (padOp) halfIn(int) bool { return true }
func (padOp) halfOut() bool   { return true }

// Pad places x in a zero tensor whose axis is size long, starting at
// start (the backward of Slice).
func (b *Builder) Pad(x *Tensor, axis, start, size int) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() || start < 0 || start+x.shape[axis] > size {
		b.Errorf("pad: %s along %d at %d to %d", shapeStr(x.shape), axis, start, size)
		return b.dummy(x.shape)
	}
	shape := x.Shape()
	shape[axis] = size
	op := padOp{outer: numel(x.shape[:axis]), axis: size, inner: numel(x.shape[axis+1:]), start: start, length: x.shape[axis]}
	return b.add(op, shape, x)
}

func (o padOp) eval(n *Node, in [][]float32) ([]float32, error) {
	out := make([]float32, o.outer*o.axis*o.inner)
	for i := 0; i < o.outer; i++ {
		copy(out[(i*o.axis+o.start)*o.inner:], in[0][i*o.length*o.inner:(i+1)*o.length*o.inner])
	}
	return out, nil
}

func (o padOp) record(r *recorder, n *Node) error {
	total := o.outer * o.axis * o.inner
	push := []uint32{uint32(total), uint32(o.axis), uint32(o.inner), uint32(o.start), uint32(o.length)}
	return r.dispatch("pad", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o padOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	axis := concatAxis(dy.shape, o.outer, o.axis)
	return []*Tensor{b.Slice(dy, axis, o.start, o.start+o.length)}
}
