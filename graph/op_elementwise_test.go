package graph

import (
	"math/rand"
	"testing"
)

func TestActivation(t *testing.T) {
	acts := []struct {
		name string
		f    func(b *Builder, x *Tensor) *Tensor
	}{
		{"silu", func(b *Builder, x *Tensor) *Tensor { return b.SiLU(x) }},
		{"gelu", func(b *Builder, x *Tensor) *Tensor { return b.GELU(x) }},
		{"gelu_tanh", func(b *Builder, x *Tensor) *Tensor { return b.GELUTanh(x) }},
		{"quick_gelu", func(b *Builder, x *Tensor) *Tensor { return b.QuickGELU(x) }},
		{"leaky_relu", func(b *Builder, x *Tensor) *Tensor { return b.LeakyReLU(x, 0.01) }},
		{"scale", func(b *Builder, x *Tensor) *Tensor { return b.Scale(x, -0.37) }},
		{"exp", func(b *Builder, x *Tensor) *Tensor { return b.Exp(b.Scale(x, 0.3)) }},
		{"sqrt", func(b *Builder, x *Tensor) *Tensor { return b.Sqrt(b.Mul(x, x)) }},
		{"rsqrt", func(b *Builder, x *Tensor) *Tensor { return b.Rsqrt(b.Exp(b.Scale(x, 0.5))) }}, // exp(x) would overflow float16
		{"silu_grad", func(b *Builder, x *Tensor) *Tensor { return b.Apply(x, ActSiLUGrad, 0) }},
		{"gelu_grad", func(b *Builder, x *Tensor) *Tensor { return b.Apply(x, ActGELUGrad, 0) }},
		{"gelu_tanh_grad", func(b *Builder, x *Tensor) *Tensor { return b.Apply(x, ActGELUTanhGrad, 0) }},
		{"quick_gelu_grad", func(b *Builder, x *Tensor) *Tensor { return b.Apply(x, ActQuickGELUGrad, 0) }},
		{"leaky_relu_grad", func(b *Builder, x *Tensor) *Tensor { return b.Apply(x, ActLeakyReLUGrad, 0.01) }},
	}
	for _, a := range acts {
		for _, n := range []int{1, 255, 257, 4099} {
			a, n := a, n
			t.Run(caseName(a.name, n), func(t *testing.T) {
				runOpCase(t, opCase{name: a.name, build: func(b *Builder) {
					b.Output("y", a.f(b, b.Input("x", n)))
				}, init: map[string]func(*rand.Rand, int) []float32{"x": func(r *rand.Rand, n int) []float32 { return randVec(r, n, 3) }}})
			})
		}
	}
}

func TestBinary(t *testing.T) {
	shapes := [][2][]int{
		{{7}, {7}},
		{{2, 3, 5}, {5}},
		{{2, 3, 5}, {3, 1}},
		{{4, 1, 6}, {1, 5, 1}},
		{{2, 8, 3, 3}, {2, 8, 1, 1}},
		{{1}, {3, 4}},
	}
	ops := []struct {
		name string
		f    func(b *Builder, x, y *Tensor) *Tensor
	}{
		{"add", func(b *Builder, x, y *Tensor) *Tensor { return b.Add(x, y) }},
		{"mul", func(b *Builder, x, y *Tensor) *Tensor { return b.Mul(x, y) }},
		{"sub", func(b *Builder, x, y *Tensor) *Tensor { return b.Sub(x, y) }},
		{"div", func(b *Builder, x, y *Tensor) *Tensor { return b.Div(x, b.Exp(y)) }},
	}
	for _, op := range ops {
		for _, s := range shapes {
			op, s := op, s
			t.Run(caseName(op.name, s[0], s[1]), func(t *testing.T) {
				runOpCase(t, opCase{name: op.name, build: func(b *Builder) {
					b.Output("y", op.f(b, b.Input("a", s[0]...), b.Input("b", s[1]...)))
				}})
			})
		}
	}
	b := NewBuilder()
	b.Add(b.Input("a", 2, 3), b.Input("b", 4))
	if b.Err() == nil {
		t.Fatal("incompatible broadcast gave no error")
	}
}
