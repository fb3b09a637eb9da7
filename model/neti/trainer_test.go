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
	train := func(seed uint64, steps int) (before, after float64, file []byte) {
		c, err := NewConcept(b, "<star>", "shape", rand.New(rand.NewPCG(seed, 7)))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(dev, b, c, imgs, 64, TrainOptions{Batch: 1, Accum: 1, LR: 8e-3, Templates: ObjectTemplates, Seed: seed, DropoutProb: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if before, err = tr.EvalLoss(99, 2); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < steps; i++ {
			if _, err := tr.Step(); err != nil {
				t.Fatal(err)
			}
		}
		if after, err = tr.EvalLoss(99, 2); err != nil {
			t.Fatal(err)
		}
		snap, err := tr.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if file, err = plugin.Encode(snap, plugin.EncodeOptions{}); err != nil {
			t.Fatal(err)
		}
		return before, after, file
	}
	start := time.Now()
	before, after, f1 := train(5, 3)
	t.Logf("3 steps of batch 1 and 4 evaluation batches: %v", time.Since(start))
	t.Logf("eval loss %.5f -> %.5f", before, after)
	if !(after < before) {
		t.Errorf("evaluation loss did not go down: %.5f -> %.5f", before, after)
	}
	_, _, f2 := train(5, 1)
	_, _, f3 := train(5, 1)
	if !bytes.Equal(f2, f3) {
		t.Error("same seed gave different plugin bytes")
	}
	_ = f1
}
