package neti

import (
	"testing"

	"github.com/neti-project/neti/model/clip"
	"github.com/neti-project/neti/vk"
)

// clipFlops estimates the multiply-adds (x2) of encoding positions P..P+S-1
// of batch prompts whose first P positions are cached: per layer the four
// projections and the MLP per position, and causal attention over the P
// cached and the earlier suffix keys.
func clipFlops(c clip.Config, batch, P, S int) float64 {
	D, I := float64(c.Hidden), float64(c.Intermediate)
	perPos := 2 * (4*D*D + 2*D*I)
	var keys float64
	for i := 0; i < S; i++ {
		keys += float64(P + i + 1)
	}
	perLayer := float64(S)*perPos + 4*keys*D // q.k and p.v
	return float64(batch) * float64(c.Layers) * perLayer
}

// BenchmarkConditionerStep times one sampling step's conditioning on
// sd-tiny (inputs uploaded, the batch-16 text encoder run, the contexts
// read back), with the prefix before the placeholder encoded once (reuse)
// and with every position encoded every step (full), for a short prefix
// ("a photo of a <concept>") and a long one. The metrics say what the
// reuse saves: positions and estimated MFLOP per step, and dispatches.
func BenchmarkConditionerStep(b *testing.B) {
	dev, err := vk.NewDevice(vk.Options{}) // no validation: it would distort the timings
	if err != nil {
		b.Skip("no Vulkan device:", err)
	}
	defer dev.Close()
	model := tinyModel(b)
	concept := tinyConcept(b)
	id, err := model.Tokenizer.AddToken(concept.Token)
	if err != nil {
		b.Fatal(err)
	}
	long := ""
	for {
		ids, n, _ := model.Tokenizer.EncodePadded(long + "a red circle ")
		if n > len(ids)-20 {
			break
		}
		long += "a red circle "
	}
	for _, p := range []struct{ name, prompt string }{
		{"short", "a photo of a " + concept.Token},
		{"long", long + concept.Token},
	} {
		ids, _, _ := model.Tokenizer.EncodePadded(p.prompt)
		for _, full := range []bool{true, false} {
			name := p.name + "/reuse"
			if full {
				name = p.name + "/full"
			}
			b.Run(name, func(b *testing.B) {
				c, err := NewConditionerWith(dev, model, ids, []ConceptUse{{Concept: concept, TokenID: id, Truncation: -1, Strength: 1}}, []float64{500}, ConditionerOptions{FullRecompute: full})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				if _, _, err := c.Step(0); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, _, err := c.Step(0); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				S := c.seq - c.prefix
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/step")
				b.ReportMetric(float64(c.text.Stats().Dispatches), "dispatches")
				b.ReportMetric(float64(c.prefix), "prefix")
				b.ReportMetric(float64(c.layers*S), "positions/step")
				b.ReportMetric(clipFlops(model.Text, c.layers, c.prefix, S)/1e6, "MFLOP/step")
			})
		}
	}
}
