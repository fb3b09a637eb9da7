#version 450
// d[i] = d[i] * MUL + add: a read-modify-write, so dispatches that follow
// each other without a barrier race.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint MUL = 1;

layout(std430, binding = 0) buffer D { uint d[]; };

layout(push_constant) uniform Push {
	uint n;
	uint add;
} p;

void main() {
	uint i = gl_GlobalInvocationID.x;
	if (i < p.n) {
		d[i] = d[i] * MUL + p.add;
	}
}
