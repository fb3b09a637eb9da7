#version 450
// C[M x N] = A[M x K] * B[K x N], row-major, one output per invocation,
// accumulating in k order. Workgroup size from specialization constants.
layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer C { float c[]; };

layout(push_constant) uniform Push {
	uint M;
	uint N;
	uint K;
} p;

void main() {
	uint col = gl_GlobalInvocationID.x;
	uint row = gl_GlobalInvocationID.y;
	if (row >= p.M || col >= p.N) {
		return;
	}
	float acc = 0.0;
	for (uint k = 0; k < p.K; k++) {
		acc += a[row * p.K + k] * b[k * p.N + col];
	}
	c[row * p.N + col] = acc;
}
