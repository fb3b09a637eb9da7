package shaders

// CompileFlags are glslc's arguments for one source; the Makefile uses the
// same ones (keep them in sync: the freshness test compares outputs).
func CompileFlags(src, out string) []string {
	return []string{"-O", "--target-env=vulkan1.2", "-I", ".", src, "-o", out}
}
