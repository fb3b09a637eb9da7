// Package ref is the ground truth for every op of package graph.
//
// Each GPU op exists in four places under one name: the GLSL shader
// (shaders/<op>.comp), the Go builder function (graph.<Op>), the plain Go
// function here (ref.<Op>) and its test (Test<Op>). A shader is only trusted
// once it matches this package, and this package is only trusted because its
// tests check it against hand-computed cases, independent naive
// formulations, central finite differences and the upstream (PyTorch,
// diffusers, transformers, NeTI) fixtures. The same functions also run whole
// tiny Stable Diffusion models on the CPU in tests, so their semantics follow
// PyTorch exactly (biased variance in the norms, exact-erf GELU, diffusers'
// GEGLU chunk order, float32 timestep sinusoids, and so on).
//
// Conventions:
//   - Tensors are row-major []float32 with dimensions passed explicitly; the
//     package has no tensor type and imports only the standard library, so
//     it cannot share a bug with the code it checks.
//   - Every sum, mean, norm and dot product accumulates in float64; results
//     are rounded to float32 once, at the end. A reference should be more
//     accurate than what it judges.
//   - Bad input never panics: when a buffer's length disagrees with the
//     dimensions, a dimension is negative, a parameter is out of range, or
//     a result would exceed 2^30 elements, the function returns nil (nil,
//     0, 0 for Conv2d; NaN for MSE). The caller validates shapes; this
//     package refuses rather than guesses.
//   - Backward functions return input gradients for an upstream gradient dy,
//     and weight gradients only where the NeTI mapper (the one trained
//     network) needs them.
//
// The unexported generic forms (matMul[T] and friends) let the tests run the
// very same code in float64, which makes finite-difference gradient checks
// tight.
package ref
