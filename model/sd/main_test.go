package sd

import (
	"fmt"
	"os"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/vk"
)

// testDev is one validating device shared by the package's tests (nil when
// the machine has no Vulkan and REQUIRE_VULKAN is not set).
var testDev *vk.Device

func TestMain(m *testing.M) {
	d, err := vk.NewDevice(vk.Options{Validation: true})
	if err != nil {
		if os.Getenv("REQUIRE_VULKAN") == "1" {
			fmt.Fprintln(os.Stderr, "REQUIRE_VULKAN=1 but:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "sd tests: no Vulkan device, GPU tests skip:", err)
	}
	testDev = d
	code := m.Run()
	if d != nil {
		if err := d.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "device close:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// device returns the shared device and fails the test on any validation
// message the test produced.
func device(t testing.TB) *vk.Device {
	t.Helper()
	if testDev == nil {
		t.Skip("no Vulkan device")
	}
	testDev.ClearMessages()
	t.Cleanup(func() {
		for _, m := range testDev.Messages() {
			t.Errorf("validation: %v", m)
		}
	})
	return testDev
}

func fixtureModel(t testing.TB, name string) *Model {
	t.Helper()
	dir, err := fixtures.Path(name, "model")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{})
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
