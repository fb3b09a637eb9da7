#version 450
// out[i] = a * SCALE * x[i] + y[i]; workgroup size and SCALE are
// specialization constants, n and a push constants.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const float SCALE = 1.0;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
	uint n;
	float a;
} p;

void main() {
	uint i = gl_GlobalInvocationID.x;
	if (i < p.n) {
		o[i] = p.a * SCALE * x[i] + y[i];
	}
}
