package shaders

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSPIRVFresh recompiles every .comp with the same command as the
// Makefile and requires the committed .spv to be identical, so a shader
// edit without `make shaders` cannot pass. Without glslc the test skips,
// unless REQUIRE_GLSLC=1 (CI sets it).
func TestSPIRVFresh(t *testing.T) {
	glslc, err := exec.LookPath("glslc")
	if err != nil {
		if os.Getenv("REQUIRE_GLSLC") == "1" {
			t.Fatal("glslc not found but REQUIRE_GLSLC=1 (apt-get install glslc)")
		}
		t.Skip("glslc not installed")
	}
	srcs, err := filepath.Glob("*.comp")
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no shader sources: %v", err)
	}
	dir := t.TempDir()
	for _, src := range srcs {
		text, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range Builds(strings.TrimSuffix(src, ".comp"), text) {
			out := filepath.Join(dir, b.Name+".spv")
			cmd := exec.Command(glslc, CompileFlags(src, out, b.Defines...)...)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s %v: glslc failed: %v\n%s", src, b.Defines, err, msg)
				continue
			}
			fresh, _ := os.ReadFile(out)
			committed, err := os.ReadFile(b.Name + ".spv")
			if err != nil {
				t.Errorf("%s: no committed %s.spv (run make shaders)", src, b.Name)
				continue
			}
			if !bytes.Equal(fresh, committed) {
				t.Errorf("%s.spv is stale: run make shaders", b.Name)
			}
		}
	}
}

// TestEveryShaderEmbedded: every build of every source is embedded, and
// every embedded shader comes from a source (no leftovers of a deleted one).
func TestEveryShaderEmbedded(t *testing.T) {
	srcs, _ := filepath.Glob("*.comp")
	built := map[string]bool{}
	for _, src := range srcs {
		text, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, bd := range Builds(strings.TrimSuffix(src, ".comp"), text) {
			built[bd.Name] = true
			b, err := Load(bd.Name)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if len(b) < 20 || b[0] != 0x03 || b[1] != 0x02 || b[2] != 0x23 || b[3] != 0x07 {
				t.Errorf("%s.spv is not SPIR-V", bd.Name)
			}
		}
	}
	for _, n := range Names() {
		if !built[n] {
			t.Errorf("%s.spv has no source build (delete it)", n)
		}
	}
	if _, err := Load("no-such-shader"); err == nil {
		t.Error("missing shader gave no error")
	}
}
