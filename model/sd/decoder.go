package sd

import (
	"fmt"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/vk"
)

// DecoderOptions tune CompileDecoder.
type DecoderOptions struct {
	// Budget is the device memory the decoder may plan (0: the device's
	// Limits budget).
	Budget int64
	// Tile forces tiled decoding with square latent tiles of this side
	// (0: tile only when a full decode does not fit).
	Tile int
	// Overlap is the latent overlap between neighbouring tiles (0: a
	// quarter of the tile, as diffusers' tiled VAE uses).
	Overlap int
}

// Tiling is how a decoder splits its latent.
type Tiling struct {
	Tiled   bool
	H, W    int // latent tile size (the whole latent when not tiled)
	Overlap int // latent rows/columns neighbouring tiles share
}

// minTile is the smallest latent tile tried: smaller tiles leave the
// decoder's receptive field mostly outside the tile.
const minTile = 8

func (m *Model) chooseTiling(h, w int, o DecoderOptions, lim Limits) (Tiling, error) {
	if o.Budget > 0 {
		lim.Budget = o.Budget
	}
	tiling := func(side int) Tiling {
		t := Tiling{H: min(side, h), W: min(side, w)}
		if t.H == h && t.W == w {
			return t
		}
		t.Tiled = true
		t.Overlap = o.Overlap
		if t.Overlap <= 0 {
			t.Overlap = max(1, side/4)
		}
		t.Overlap = min(t.Overlap, min(t.H, t.W)-1)
		return t
	}
	if o.Tile > 0 {
		return tiling(o.Tile), nil
	}
	side := max(h, w)
	var why error
	for {
		t := tiling(side)
		g, err := m.decoderGraph(t.H, t.W)
		if err != nil {
			return Tiling{}, err
		}
		st, err := graph.Plan(g, lim.Limits, m.GraphOptions(lim.Limits))
		switch {
		case err != nil:
			why = err // a tensor larger than one binding, or one buffer
		case lim.Budget > 0 && st.PeakBytes() > lim.Budget:
			why = fmt.Errorf("plans %s, budget %s", MiB(st.PeakBytes()), MiB(lim.Budget))
		default:
			return t, nil
		}
		if side <= minTile {
			break
		}
		side = max(minTile, (side+1)/2)
	}
	return Tiling{}, fmt.Errorf("sd: vae decoder: even %dx%d latent tiles do not fit the device: %w", min(side, w), min(side, h), why)
}

// Decoder is a compiled VAE decoder for one latent size, tiled when the
// whole latent does not fit the device in one program.
type Decoder struct {
	p          *graph.Program
	t          Tiling
	h, w       int
	latC, outC int
	f          int
}

// CompileDecoder builds and compiles the VAE decoder for h x w latents.
func (m *Model) CompileDecoder(dev *vk.Device, h, w int, o DecoderOptions) (*Decoder, error) {
	t, err := m.chooseTiling(h, w, o, DeviceLimits(dev.Info()))
	if err != nil {
		return nil, err
	}
	g, err := m.decoderGraph(t.H, t.W)
	if err != nil {
		return nil, err
	}
	p, err := graph.Compile(dev, g, m.VAEWeights(), m.CompileOptions(dev))
	if err != nil {
		return nil, fmt.Errorf("sd: compile vae decoder (%dx%d latent): %w", t.W, t.H, err)
	}
	return &Decoder{p: p, t: t, h: h, w: w, latC: m.VAE.LatentChannels, outC: m.VAE.OutChannels, f: m.LatentFactor()}, nil
}

// Tiling reports how the decoder splits latents.
func (d *Decoder) Tiling() Tiling { return d.t }

// Stats are the program's planned memory and dispatches.
func (d *Decoder) Stats() graph.Stats { return d.p.Stats() }

// Close releases the program.
func (d *Decoder) Close() error { return d.p.Close() }

// Decode turns z [1, latent, h, w] (latents already divided by the scaling
// factor) into the image [1, out, h*f, w*f], about in [-1, 1].
func (d *Decoder) Decode(z []float32) ([]float32, error) {
	if len(z) != d.latC*d.h*d.w {
		return nil, fmt.Errorf("sd: vae decoder: %d values, want %d", len(z), d.latC*d.h*d.w)
	}
	if !d.t.Tiled {
		return d.run(z)
	}
	return tiledDecode(z, d.latC, d.h, d.w, d.outC, d.f, d.t, d.run)
}

func (d *Decoder) run(z []float32) ([]float32, error) {
	if err := d.p.SetInput(InLatent, z); err != nil {
		return nil, fmt.Errorf("sd: vae decoder: %w", err)
	}
	if err := d.p.Run(); err != nil {
		return nil, fmt.Errorf("sd: vae decoder: %w", err)
	}
	out, err := d.p.Output(OutImage)
	if err != nil {
		return nil, fmt.Errorf("sd: vae decoder: %w", err)
	}
	return out, nil
}

// tileStarts lists the tile origins along an axis of n with tiles of t
// overlapping by ov: evenly strided, the last one flush with the end.
func tileStarts(n, t, ov int) []int {
	if t >= n {
		return []int{0}
	}
	stride := max(1, t-ov)
	var s []int
	for x := 0; x+t < n; x += stride {
		s = append(s, x)
	}
	return append(s, n-t)
}

// ramp is a tile's blending weight at pixel p of an axis of length n (in
// pixels) whose leading/trailing edges meet another tile over ramp pixels:
// it rises linearly from the edge so seams fade instead of cutting.
func ramp(p, n, width int, lead, trail bool) float32 {
	w := float32(1)
	if lead && p < width {
		w = min(w, (float32(p)+0.5)/float32(width))
	}
	if trail && n-1-p < width {
		w = min(w, (float32(n-1-p)+0.5)/float32(width))
	}
	return w
}

// tiledDecode decodes z [c, h, w] tile by tile with decode (tile latent of
// t.H x t.W -> image [outC, t.H*f, t.W*f]) and blends the overlaps. The
// decoder's group norms see only their tile, so the result is close to,
// not equal to, a whole decode (as with diffusers' tiled VAE).
func tiledDecode(z []float32, c, h, w, outC, f int, t Tiling, decode func([]float32) ([]float32, error)) ([]float32, error) {
	H, W := h*f, w*f
	th, tw := t.H*f, t.W*f
	acc := make([]float32, outC*H*W)
	wsum := make([]float32, H*W)
	tile := make([]float32, c*t.H*t.W)
	ys, xs := tileStarts(h, t.H, t.Overlap), tileStarts(w, t.W, t.Overlap)
	width := t.Overlap * f
	for yi, y0 := range ys {
		for xi, x0 := range xs {
			for ch := 0; ch < c; ch++ {
				for y := 0; y < t.H; y++ {
					copy(tile[(ch*t.H+y)*t.W:(ch*t.H+y+1)*t.W], z[(ch*h+y0+y)*w+x0:])
				}
			}
			img, err := decode(tile)
			if err != nil {
				return nil, fmt.Errorf("tile at latent (%d, %d): %w", x0, y0, err)
			}
			if len(img) != outC*th*tw {
				return nil, fmt.Errorf("sd: vae decoder: tile gave %d values, want %d", len(img), outC*th*tw)
			}
			for y := 0; y < th; y++ {
				wy := ramp(y, th, width, yi > 0, yi < len(ys)-1)
				for x := 0; x < tw; x++ {
					wt := wy * ramp(x, tw, width, xi > 0, xi < len(xs)-1)
					pix := (y0*f+y)*W + x0*f + x
					wsum[pix] += wt
					for ch := 0; ch < outC; ch++ {
						acc[ch*H*W+pix] += wt * img[(ch*th+y)*tw+x]
					}
				}
			}
		}
	}
	for ch := 0; ch < outC; ch++ {
		for i, s := range wsum {
			acc[ch*H*W+i] /= s
		}
	}
	return acc, nil
}
