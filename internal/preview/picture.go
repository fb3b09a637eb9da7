// Package preview shows images in a window while neti works: the latents
// of every sampler step as a cheap RGB approximation, then the decoded
// image (`neti generate --preview`, `neti train --preview`), and the
// interactive concept explorer (`neti view`).
//
// The window itself (glfw, X11 and the Vulkan swapchain) is built only with
// the build tag `preview` (make builds with it), so a default build stays
// headless: it links no X library and never needs a display. Without the
// tag, Open returns ErrNotBuilt. What every build has is the GPU side of
// the picture: a compute shader (shaders/latent_rgb.comp) that turns a
// planar image — SD latents or decoded RGB — into the window's packed
// pixels, and its plain-Go reference; both are tested headless.
package preview

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/neti-project/neti/shaders"
	"github.com/neti-project/neti/vk"
)

// ErrNotBuilt is returned by Open in a binary built without the preview
// tag.
var ErrNotBuilt = errors.New("preview: this neti was built without the preview window; build it with `make` (go build -tags preview,vulkan ./cmd/neti)")

// SD1Factors are the well-known linear approximations of the SD 1.x VAE
// decoder: row k is latent channel k's contribution to R, G, B. The result
// is in [-1, 1]; Latent maps it to [0, 1].
var SD1Factors = [4][3]float32{
	{0.3512, 0.2297, 0.3227},
	{0.3250, 0.4974, 0.2350},
	{-0.2829, 0.1762, 0.2721},
	{-0.2120, -0.2616, -0.7177},
}

// Source is a planar image [C, H, W] and how its channels become colour.
type Source struct {
	Data    []float32
	C, H, W int
	// Matrix[k][j] is channel k's contribution to colour j (R, G, B);
	// Bias is added. Only the first C rows are used.
	Matrix [4][3]float32
	Bias   [3]float32
	// Bilinear smooths the upscaling (latents); otherwise each window pixel
	// shows the nearest source pixel exactly (decoded images).
	Bilinear bool
}

// Latent describes SD latents [c, h, w] for display: SD 1.x's factors for
// 4 channels, and for another channel count the first three channels as
// grey-centred colours.
func Latent(data []float32, c, h, w int) Source {
	s := Source{Data: data, C: min(c, 4), H: h, W: w, Bilinear: true, Bias: [3]float32{0.5, 0.5, 0.5}}
	if c == 4 {
		for k := range 4 {
			for j := range 3 {
				s.Matrix[k][j] = SD1Factors[k][j] / 2
			}
		}
		return s
	}
	for k := 0; k < min(c, 3); k++ {
		s.Matrix[k][k] = 0.25
	}
	if c < 3 {
		// Grey from the channels there are.
		for k := 0; k < c; k++ {
			s.Matrix[k] = [3]float32{0.25, 0.25, 0.25}
		}
	}
	return s
}

// RGB describes a decoded image [3, h, w] in [0, 1].
func RGB(data []float32, h, w int) Source {
	s := Source{Data: data, C: 3, H: h, W: w}
	for k := range 3 {
		s.Matrix[k][k] = 1
	}
	return s
}

// Image describes an 8-bit image for display, exactly: each window pixel
// shows the nearest image pixel with the same bytes.
func Image(img *image.NRGBA) Source {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	data := make([]float32, 3*w*h)
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			for k := range 3 {
				data[(k*h+y)*w+x] = float32(row[4*x+k]) / 255
			}
		}
	}
	return RGB(data, h, w)
}

// Rect is where an image lands in the window.
type Rect struct{ X, Y, W, H int }

// Fit scales a w x h image to the largest size that fits a W x H window
// with the same aspect ratio — by a whole factor when the image fits at
// least once, so that pixels stay square blocks — and centres it.
func Fit(w, h, W, H int) Rect {
	if w <= 0 || h <= 0 || W <= 0 || H <= 0 {
		return Rect{}
	}
	if k := min(W/w, H/h); k >= 1 {
		return Rect{(W - k*w) / 2, (H - k*h) / 2, k * w, k * h}
	}
	// Smaller than the image: keep the aspect ratio, round down.
	sw, sh := W, h*W/w
	if sh > H {
		sw, sh = w*H/h, H
	}
	sw, sh = max(sw, 1), max(sh, 1)
	return Rect{(W - sw) / 2, (H - sh) / 2, sw, sh}
}

// Background is the grey of the window around the image (8-bit, each of R,
// G and B).
const Background = 32

func (s *Source) check() error {
	switch {
	case s.C < 1 || s.C > 4 || s.H < 1 || s.W < 1:
		return fmt.Errorf("preview: source of %d x %d x %d (want 1 to 4 channels and a positive size)", s.C, s.H, s.W)
	case len(s.Data) < s.C*s.H*s.W:
		return fmt.Errorf("preview: %d values for a %d x %d x %d source", len(s.Data), s.C, s.H, s.W)
	}
	return nil
}

// Reference computes what the shader writes, on the CPU (float64
// arithmetic): one packed pixel per window pixel, R in the low byte unless
// bgra (then B).
func Reference(s Source, W, H int, r Rect, bgra bool) []uint32 {
	out := make([]uint32, W*H)
	for py := range H {
		for px := range W {
			rgb := [3]float64{Background / 255.0, Background / 255.0, Background / 255.0}
			if px >= r.X && py >= r.Y && px < r.X+r.W && py < r.Y+r.H {
				dx, dy := px-r.X, py-r.Y
				for j := range 3 {
					rgb[j] = float64(s.Bias[j])
				}
				for k := 0; k < s.C; k++ {
					var v float64
					if !s.Bilinear {
						v = float64(s.Data[(k*s.H+dy*s.H/r.H)*s.W+dx*s.W/r.W])
					} else {
						fx := clampF((float64(dx)+0.5)*float64(s.W)/float64(r.W)-0.5, 0, float64(s.W-1))
						fy := clampF((float64(dy)+0.5)*float64(s.H)/float64(r.H)-0.5, 0, float64(s.H-1))
						x0, y0 := int(fx), int(fy)
						x1, y1 := min(x0+1, s.W-1), min(y0+1, s.H-1)
						ax, ay := fx-float64(x0), fy-float64(y0)
						at := func(y, x int) float64 { return float64(s.Data[(k*s.H+y)*s.W+x]) }
						top := at(y0, x0)*(1-ax) + at(y0, x1)*ax
						bot := at(y1, x0)*(1-ax) + at(y1, x1)*ax
						v = top*(1-ay) + bot*ay
					}
					for j := range 3 {
						rgb[j] += v * float64(s.Matrix[k][j])
					}
				}
			}
			var b [3]uint32
			for j := range 3 {
				b[j] = uint32(math.Floor(clampF(rgb[j], 0, 1)*255 + 0.5))
			}
			if bgra {
				b[0], b[2] = b[2], b[0]
			}
			out[py*W+px] = b[0] | b[1]<<8 | b[2]<<16 | 0xff000000
		}
	}
	return out
}

func clampF(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// Converter runs shaders/latent_rgb.comp: it uploads a Source and writes
// the window's pixels into a device buffer, which the swapchain copies
// from. One Converter serves one window size at a time.
type Converter struct {
	dev      *vk.Device
	kernel   *vk.Kernel
	src, dst *vk.Buffer
}

const pushSize = 100 // 10 uints + 15 floats, as the shader's block

// NewConverter compiles the shader on dev.
func NewConverter(dev *vk.Device) (*Converter, error) {
	code, err := shaders.Load("latent_rgb")
	if err != nil {
		return nil, err
	}
	k, err := dev.NewKernel(vk.KernelSpec{Name: "latent_rgb", SPIRV: code, Bindings: 2, PushSize: pushSize, LocalSize: [3]uint32{16, 16, 1}})
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	return &Converter{dev: dev, kernel: k}, nil
}

// ensure grows a buffer to at least n bytes.
func (c *Converter) ensure(b **vk.Buffer, n int64) error {
	if *b != nil && (*b).Size() >= n {
		return nil
	}
	if *b != nil {
		if err := (*b).Close(); err != nil {
			return err
		}
		*b = nil
	}
	nb, err := c.dev.NewBuffer(n)
	if err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	*b = nb
	return nil
}

// Convert draws s into a W x H picture at r and returns the device buffer
// holding it (W*H packed pixels; valid until the next Convert or Close).
func (c *Converter) Convert(s Source, W, H int, r Rect, bgra bool) (*vk.Buffer, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if W < 1 || H < 1 {
		return nil, fmt.Errorf("preview: window of %d x %d", W, H)
	}
	n := s.C * s.H * s.W
	if err := c.ensure(&c.src, int64(4*n)); err != nil {
		return nil, err
	}
	if err := c.ensure(&c.dst, int64(4*W*H)); err != nil {
		return nil, err
	}
	buf := make([]byte, 4*n)
	for i, v := range s.Data[:n] {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	if err := c.src.Write(0, buf); err != nil {
		return nil, fmt.Errorf("preview: upload: %w", err)
	}
	push := make([]byte, 0, pushSize)
	flags := uint32(0)
	if s.Bilinear {
		flags |= 1
	}
	if bgra {
		flags |= 2
	}
	for _, u := range []int{s.C, s.H, s.W, W, H, r.X, r.Y, r.W, r.H} {
		push = binary.LittleEndian.AppendUint32(push, uint32(u))
	}
	push = binary.LittleEndian.AppendUint32(push, flags)
	for k := range 4 {
		for j := range 3 {
			push = binary.LittleEndian.AppendUint32(push, math.Float32bits(s.Matrix[k][j]))
		}
	}
	for j := range 3 {
		push = binary.LittleEndian.AppendUint32(push, math.Float32bits(s.Bias[j]))
	}
	// Each call records afresh: push constants change with every picture and
	// a preview frame is one dispatch, so there is nothing worth caching.
	err := c.dev.Submit(func(rec *vk.Recording) error {
		return rec.Dispatch(c.kernel, []vk.Binding{{Buf: c.src, Size: int64(4 * n)}, {Buf: c.dst, Size: int64(4 * W * H)}},
			push, uint32((W+15)/16), uint32((H+15)/16), 1)
	})
	if err != nil {
		return nil, fmt.Errorf("preview: latent_rgb: %w", err)
	}
	return c.dst, nil
}

// Pixels reads back the W x H pixels of the last Convert (tests).
func (c *Converter) Pixels(W, H int) ([]uint32, error) {
	raw := make([]byte, 4*W*H)
	if err := c.dst.Read(0, raw); err != nil {
		return nil, fmt.Errorf("preview: read back: %w", err)
	}
	out := make([]uint32, W*H)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return out, nil
}

// Close releases the kernel and buffers.
func (c *Converter) Close() error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, b := range []*vk.Buffer{c.src, c.dst} {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	c.src, c.dst = nil, nil
	if c.kernel != nil {
		errs = append(errs, c.kernel.Close())
		c.kernel = nil
	}
	return errors.Join(errs...)
}
