#version 450
// latent_rgb: the preview window's picture. Reads a planar image [c, h, w]
// (SD latents, or decoded RGB in [0, 1]), maps its channels to RGB with a
// 3 x c matrix plus a bias (for SD 1.x latents: the well-known linear
// latent->RGB factors), scales it into the rectangle (ox, oy, sw, sh) of a
// W x H window, and writes packed 8-bit pixels in the swapchain's byte
// order, ready for vkCmdCopyBufferToImage. Pixels outside the rectangle get
// the background colour (letterboxing).
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { uint y[]; };
layout(push_constant) uniform P {
    uint c, h, w;       // source channels (at most 4), height, width
    uint W, H;          // window size in pixels
    uint ox, oy, sw, sh; // where the scaled source lands in the window
    uint flags;         // bit 0: bilinear (else nearest); bit 1: BGRA order (else RGBA)
    float m[12];        // m[3*k + j]: channel k's contribution to colour j
    float bias[3];
} p;

float texel(uint k, uint sy, uint sx) { return x[(k * p.h + sy) * p.w + sx]; }

void main() {
    uint px = gl_GlobalInvocationID.x, py = gl_GlobalInvocationID.y;
    if (px >= p.W || py >= p.H) return;
    vec3 rgb;
    if (px < p.ox || py < p.oy || px >= p.ox + p.sw || py >= p.oy + p.sh) {
        rgb = vec3(32.0 / 255.0);
    } else {
        uint dx = px - p.ox, dy = py - p.oy;
        rgb = vec3(p.bias[0], p.bias[1], p.bias[2]);
        if ((p.flags & 1u) == 0u) {
            // Nearest: integer arithmetic, so the Go reference is exact.
            uint sx = dx * p.w / p.sw, sy = dy * p.h / p.sh;
            for (uint k = 0; k < p.c; k++) {
                float v = texel(k, sy, sx);
                rgb += v * vec3(p.m[3 * k], p.m[3 * k + 1], p.m[3 * k + 2]);
            }
        } else {
            // Bilinear between source pixel centres, clamped at the edges.
            float fx = clamp((float(dx) + 0.5) * float(p.w) / float(p.sw) - 0.5, 0.0, float(p.w - 1));
            float fy = clamp((float(dy) + 0.5) * float(p.h) / float(p.sh) - 0.5, 0.0, float(p.h - 1));
            uint x0 = uint(fx), y0 = uint(fy);
            uint x1 = min(x0 + 1, p.w - 1), y1 = min(y0 + 1, p.h - 1);
            float ax = fx - float(x0), ay = fy - float(y0);
            for (uint k = 0; k < p.c; k++) {
                float top = mix(texel(k, y0, x0), texel(k, y0, x1), ax);
                float bot = mix(texel(k, y1, x0), texel(k, y1, x1), ax);
                float v = mix(top, bot, ay);
                rgb += v * vec3(p.m[3 * k], p.m[3 * k + 1], p.m[3 * k + 2]);
            }
        }
    }
    uvec3 b = uvec3(clamp(rgb, 0.0, 1.0) * 255.0 + 0.5);
    uint word = (p.flags & 2u) != 0u ? (b.b | b.g << 8 | b.r << 16) : (b.r | b.g << 8 | b.b << 16);
    y[py * p.W + px] = word | 0xff000000u;
}
