package neti

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
)

func shapesBase(t *testing.T) *sd.Model {
	t.Helper()
	b, err := sd.OpenBuiltin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func starImages(t *testing.T) [][]float32 {
	t.Helper()
	dir, err := fixtures.Path("sd-shapes", "concept-star")
	if err != nil {
		t.Fatal(err)
	}
	imgs, names, err := LoadImages(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 6 || names[0] != "00.png" {
		t.Fatalf("star images: %d %v", len(imgs), names)
	}
	return imgs
}

// Training the held-out star on the built-in model lowers the loss on a
// fixed evaluation batch, and the same seed gives the same plugin bytes.
func TestTrainerLearnsStar(t *testing.T) {
	dev := device(t)
	if dev == nil {
		t.Skip("no Vulkan device")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	b := shapesBase(t)
	imgs := starImages(t)
	newTrainer := func(seed uint64) *Trainer {
		c, err := NewConcept(b, "<star>", "shape", rand.New(rand.NewPCG(seed, 7)))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(dev, b, c, imgs, 64, TrainOptions{Batch: 1, Accum: 1, LR: 8e-3, Templates: ObjectTemplates, Seed: seed, DropoutProb: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	encode := func(tr *Trainer) []byte {
		snap, err := tr.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		f, err := plugin.Encode(snap, plugin.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	step := func(tr *Trainer) {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	a, twin := newTrainer(5), newTrainer(5)
	before, err := a.EvalLoss(99, 2)
	if err != nil {
		t.Fatal(err)
	}
	step(a)
	step(twin)
	if !bytes.Equal(encode(a), encode(twin)) {
		t.Error("same seed gave different plugin bytes")
	}
	step(a)
	step(a)
	after, err := a.EvalLoss(99, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval loss %.5f -> %.5f after 3 steps (%v)", before, after, time.Since(start))
	if !(after < before) {
		t.Errorf("evaluation loss did not go down: %.5f -> %.5f", before, after)
	}
}
