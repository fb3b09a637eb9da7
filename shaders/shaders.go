// Package shaders holds the GLSL compute sources of every op and their
// SPIR-V, compiled by `make shaders` (glslc -O --target-env=vulkan1.2) and
// committed, so building neti never needs glslc. A test recompiles every
// source and fails when a committed .spv is stale.
//
// Each op has one source, shaders/<op>.comp; variants are specialization
// constants or small .comp files that #include a shared .glsl body. A
// source that includes storage.glsl also compiles to <op>_h.spv, whose
// bindings may hold float16 (see storage.glsl).
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.spv
var spv embed.FS

// Load returns the SPIR-V of the named shader (file name without .spv).
func Load(name string) ([]byte, error) {
	b, err := spv.ReadFile(name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shaders: no compiled shader %q (run make shaders): %w", name, err)
	}
	return b, nil
}

// HasHalf says whether the named shader has an fp16-capable _h variant.
func HasHalf(name string) bool {
	_, err := fs.Stat(spv, name+HalfSuffix+".spv")
	return err == nil
}

// Names lists the embedded shaders.
func Names() []string {
	ents, _ := fs.ReadDir(spv, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".spv"))
	}
	sort.Strings(out)
	return out
}
