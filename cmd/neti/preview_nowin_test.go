package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

// `generate --preview` where no window can be shown (no DISPLAY here; in a
// build without the preview tag, not built) says why in one line and still
// writes its image.
func TestGeneratePreviewWithoutWindow(t *testing.T) {
	needVulkan(t)
	t.Setenv("DISPLAY", "")
	model, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.png")
	var stdout, stderr bytes.Buffer
	args := []string{"generate", "-m", model, "-p", "a photo of a cat", "--steps", "2", "--cfg-scale", "1", "-o", out, "--preview", "-q"}
	if rc := run(args, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal("no image written:", err)
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "preview: ") || !strings.HasSuffix(msg, "continuing without the preview window") {
		t.Errorf("want one line explaining the missing window, got %q", msg)
	}
}

// neti view needs a window and says so.
func TestViewWithoutWindow(t *testing.T) {
	t.Setenv("DISPLAY", "")
	var stdout, stderr bytes.Buffer
	rc := run([]string{"view", "-p", "a <toy>", "--concept", "x.neti"}, &stdout, &stderr)
	if rc == 0 || !strings.Contains(stderr.String(), "needs a window") {
		t.Errorf("exit %d, stderr %q", rc, stderr.String())
	}
}
