package ref

import "testing"

// Dimensions that no data backs (k = 0, empty heads, huge pads, a dim
// parameter) must not be able to demand a huge allocation or loop.
func TestOutputLimit(t *testing.T) {
	const big = 1 << 16 // big² = 2^32 > maxElems
	row := make([]float32, big)
	cases := []struct {
		name string
		nilf func() bool
	}{
		{"MatMul k=0", func() bool { return MatMul(nil, nil, 1, big, big, 0, false, false, false) == nil }},
		{"Linear in=0", func() bool { return Linear(nil, big, 0, nil, big, nil) == nil }},
		{"Conv2d huge pads", func() bool {
			y, _, _ := Conv2d(nil, 0, 1, 1, 1, make([]float32, 1), 1, 1, 1, nil, Conv2dParams{1, 1, big, big, big, big})
			return y == nil
		}},
		{"Conv2dBackwardInput huge image", func() bool {
			return Conv2dBackwardInput(nil, 1, 1, big, big, make([]float32, 1), 0, 1, 1, Conv2dParams{StrideH: 1, StrideW: 1}) == nil
		}},
		{"Attention empty heads", func() bool { return Attention(nil, nil, nil, 1, big, big, 1, 0, 0, 1, false) == nil }},
		{"Sum empty axis", func() bool { return Sum(nil, big, 0, big) == nil }},
		{"Add outer product", func() bool { out, _ := Add(row, []int{big, 1}, row, []int{1, big}); return out == nil }},
		{"Embedding", func() bool { return Embedding(row, 1, big, make([]int32, big)) == nil }},
		{"TimestepEmbedding dim", func() bool { return TimestepEmbedding([]float32{1, 2, 3, 4}, 1<<29, false, 0, 1, 1e4) == nil }},
	}
	for _, c := range cases {
		if !c.nilf() {
			t.Errorf("%s: accepted", c.name)
		}
	}
	// A large but sane broadcast still works.
	if out, _ := Add(row[:1<<10], []int{1 << 10, 1}, row[:1<<10], []int{1, 1 << 10}); len(out) != 1<<20 {
		t.Errorf("1Mi-element broadcast refused")
	}
}
