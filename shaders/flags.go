package shaders

import "bytes"

// CompileFlags are glslc's arguments for one source; the Makefile uses the
// same ones (keep them in sync: the freshness test compares outputs).
// defines are added as -D flags (the _h variant's HALF).
func CompileFlags(src, out string, defines ...string) []string {
	f := []string{"-O", "--target-env=vulkan1.2"}
	for _, d := range defines {
		f = append(f, "-D"+d)
	}
	return append(f, "-I", ".", src, "-o", out)
}

// Build is one SPIR-V file a source compiles to.
type Build struct {
	Name    string   // the .spv's name without extension
	Defines []string // extra -D flags
}

// Builds lists what the source name.comp compiles to: name.spv, and
// name_h.spv built with HALF when the source includes storage.glsl (its
// bindings may then hold float16; see storage.glsl). The Makefile picks
// the same sources by the same test.
func Builds(name string, src []byte) []Build {
	out := []Build{{Name: name}}
	if bytes.Contains(src, []byte(`"storage.glsl"`)) {
		out = append(out, Build{Name: name + HalfSuffix, Defines: []string{"HALF"}})
	}
	return out
}

// HalfSuffix names a shader's fp16-capable variant.
const HalfSuffix = "_h"
