//go:build preview

package main

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/pngmeta"
	"github.com/neti-project/neti/internal/preview"
	"github.com/neti-project/neti/internal/xvfb"
)

// screenMatches waits until a screenshot of the window shows img scaled by
// a whole factor, pixel for pixel, and fails the test if it never does.
func screenMatches(t *testing.T, win *preview.Window, img *image.NRGBA) {
	t.Helper()
	W, H := win.Size()
	b := img.Bounds()
	want := preview.Reference(preview.Image(img), W, H, preview.Fit(b.Dx(), b.Dy(), W, H), false)
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		win.Poll()
		shot, err := xvfb.Screenshot(win.XID())
		if err != nil {
			t.Fatal(err)
		}
		if sb := shot.Bounds(); sb.Dx() != W || sb.Dy() != H {
			last = fmt.Sprintf("screenshot %dx%d, window %dx%d", sb.Dx(), sb.Dy(), W, H)
			continue
		}
		bad := 0
		for y := range H {
			for x := range W {
				o := shot.PixOffset(x, y)
				got := uint32(shot.Pix[o]) | uint32(shot.Pix[o+1])<<8 | uint32(shot.Pix[o+2])<<16 | 0xff000000
				if got != want[y*W+x] {
					bad++
				}
			}
		}
		if bad == 0 {
			return
		}
		last = fmt.Sprintf("%d of %d pixels differ from the image", bad, W*H)
	}
	t.Fatal(last)
}

// previewSetup prepares a window test: the goroutine locked to its thread
// (GLFW's calls must stay on one), a Vulkan device and a virtual X server
// required; it returns the sd-tiny model's path.
func previewSetup(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	needVulkan(t)
	xvfb.Display(t)
	model, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// `neti generate --preview` on a virtual X server: the window shows the
// generated image (checked on a screenshot, pixel for pixel, against the
// PNG it wrote), with no validation message.
func TestGeneratePreviewScreenshot(t *testing.T) {
	model := previewSetup(t)
	out := filepath.Join(t.TempDir(), "a.png")
	shown := false
	f := genFlags{model: model, prompt: "a photo of a cat", sampler: "ddim", output: out, latentsKey: defaultLatentsKey,
		steps: 2, batch: 1, truncation: -1, cfg: 1, seed: 7, quiet: true, preview: true,
		previewShown: func(win *preview.Window, img *image.NRGBA) {
			shown = true
			screenMatches(t, win, img)
		}}
	var stdout, stderr bytes.Buffer
	if err := generate(f, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !shown {
		t.Fatalf("the window was not shown: %s", stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// neti view: a key lowers the truncation, the image regenerates and shows
// on screen, s saves it with parameters that record the truncation, q
// quits.
func TestViewKeysAndSave(t *testing.T) {
	model := previewSetup(t)
	dir := t.TempDir()
	concept := filepath.Join(dir, "toy.neti")
	var sink bytes.Buffer
	if err := runImport([]string{importFixture(t, "mapper-steps-10.pt"), "--embeds", importFixture(t, "learned_embeds-steps-10.bin"), "--text-width", "32", "-o", concept}, &sink, &sink); err != nil {
		t.Fatal(err)
	}
	var states []viewState
	f := viewFlags{model: model, prompt: "a photo of a <toy>", concepts: []string{concept}, steps: 1, cfg: 1, seed: 3,
		sampler: "ddim", truncation: 128, outDir: dir,
		keys: []preview.Key{{Name: "down", Shift: true}, {Name: "]"}},
		onShown: func(win *preview.Window, st viewState, img *image.NRGBA) []preview.Key {
			states = append(states, st)
			screenMatches(t, win, img)
			return []preview.Key{{Name: "s"}, {Name: "q"}}
		}}
	var stdout, stderr bytes.Buffer
	if err := view(f, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if len(states) != 1 || states[0].trunc != 127 || states[0].strength[0] != 1.1 {
		t.Fatalf("states %+v", states)
	}
	path := strings.TrimSpace(stdout.String())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("saved %q: %v", path, err)
	}
	texts, err := pngmeta.ReadText(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := pngmeta.Lookup(texts, pngmeta.Key)
	if !strings.Contains(s, "trunc 127") || !strings.Contains(s, "strength 1.1") || !strings.Contains(s, "Seed: 3") {
		t.Errorf("parameters %q", s)
	}
}

// `neti train --preview` on a virtual X server: after a training step the
// window shows the validation sample (checked on a screenshot, pixel for
// pixel), and the concept file is still written.
func TestTrainPreviewScreenshot(t *testing.T) {
	model := previewSetup(t)
	images, err := fixtures.Path("sd-shapes", "concept-star")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "star.neti")
	samples := 0
	args := []string{"-m", model, "--images", images, "--token", "<star>", "--init-token", "cat",
		"--steps", "1", "--batch-size", "1", "--grad-accum", "1", "--save-every", "0", "--quiet",
		"--preview", "--preview-every", "1", "--preview-steps", "1", "--preview-hold=false", "-o", out}
	var stdout, stderr bytes.Buffer
	err = runTrainWith(args, &stdout, &stderr, func(win *preview.Window, img *image.NRGBA) {
		samples++
		screenMatches(t, win, img)
	})
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	// One sample before training and one at the end.
	if samples != 2 {
		t.Errorf("%d validation samples shown, want 2: %s", samples, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
