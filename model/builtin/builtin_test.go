package builtin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirExtractsOnceAndReuses(t *testing.T) {
	root := t.TempDir()
	d1, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json"} {
		if _, err := os.Stat(filepath.Join(d1, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	d2, err := Dir(root)
	if err != nil || d2 != d1 {
		t.Fatalf("second Dir = %q, %v; want %q", d2, err, d1)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "models"))
	if len(ents) != 1 {
		t.Errorf("leftover folders: %v", ents)
	}
}
