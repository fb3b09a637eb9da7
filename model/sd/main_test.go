package sd

import (
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/testdev"
	"github.com/neti-project/neti/vk"
)

func TestMain(m *testing.M) { testdev.Main(m) }

// device returns the shared validating device (skipping without one); any
// validation message fails the test.
func device(t testing.TB) *vk.Device { return testdev.Device(t) }

func fixtureModel(t testing.TB, name string) *Model {
	t.Helper()
	dir, err := fixtures.Path(name, "model")
	if err != nil {
		t.Fatal(err)
	}
	// fp32 weights: the fixtures are fp32 models checked at fp32 tolerance
	// (TestF16Storage checks the fp16 path against the same references).
	m, err := Open(dir, Options{Weights: graph.WeightsF32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func tinyCase(t testing.TB, name string) *fixtures.Case {
	t.Helper()
	man, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := man.Case(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tensor(t testing.TB, c *fixtures.Case, output bool, name string) []float32 {
	t.Helper()
	var v []float32
	var err error
	if output {
		v, _, err = c.OutputTensor(name)
	} else {
		v, _, err = c.InputTensor(name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// closeTo checks got against want by relative Frobenius error.
func closeTo(t testing.TB, what string, got, want []float32, rel float64) {
	t.Helper()
	if e := graph.RelErr(got, want); !(e <= rel) {
		t.Errorf("%s: relative error %.3g > %.1g (max abs diff %.3g)", what, e, rel, graph.MaxAbsDiff(got, want))
	}
}
