package vae

import (
	"math"
	"math/rand"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/graph/ref"
)

// Heads wider than the fused kernel takes (SD's 512-wide VAE head) are
// spelled out as matmul, softmax, matmul; both paths must agree with the
// reference attention.
func TestSingleHeadAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, ch := range []int{64, graph.MaxHeadDim + 32} {
		const n, hw = 2, 9
		vals := map[string][]float32{}
		b := graph.NewBuilder()
		var in []*graph.Tensor
		for _, name := range []string{"q", "k", "v"} {
			v := make([]float32, n*hw*ch)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			vals[name] = v
			in = append(in, b.Input(name, n, hw, ch))
		}
		b.Output("a", singleHeadAttention(b, in[0], in[1], in[2], ch))
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		res, err := graph.Interpret(g, vals, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Attention(vals["q"], vals["k"], vals["v"], n, hw, hw, 1, ch, ch, float32(1/math.Sqrt(float64(ch))), false)
		if e := graph.RelErr(res["a"], want); e > 1e-5 {
			t.Errorf("head width %d: relative error %.3g", ch, e)
		}
	}
}
