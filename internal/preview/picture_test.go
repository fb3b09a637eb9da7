package preview

import (
	"image"
	"math/rand/v2"
	"testing"

	"github.com/neti-project/neti/internal/testdev"
)

func TestMain(m *testing.M) { testdev.Main(m) }

func TestFit(t *testing.T) {
	for _, c := range []struct {
		w, h, W, H int
		want       Rect
	}{
		{64, 64, 512, 512, Rect{0, 0, 512, 512}},
		{64, 64, 500, 400, Rect{58, 8, 384, 384}},
		{8, 6, 100, 100, Rect{2, 14, 96, 72}},
		{512, 256, 256, 256, Rect{0, 64, 256, 128}},
	} {
		if got := Fit(c.w, c.h, c.W, c.H); got != c.want {
			t.Errorf("Fit(%d, %d, %d, %d) = %+v, want %+v", c.w, c.h, c.W, c.H, got, c.want)
		}
	}
}

// The shader's pixels equal the Go reference: exactly for nearest-neighbour
// RGB (what the final image shows), within one step of 8 bits for bilinear
// latents (float32 on the device against float64 here), in both byte
// orders, with letterboxing and a window that is not a whole multiple.
func TestConverterMatchesReference(t *testing.T) {
	dev := testdev.Device(t)
	c, err := NewConverter(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]float32, 4*6*5)
	for i := range lat {
		lat[i] = float32(rng.NormFloat64() * 1.5)
	}
	img := image.NewNRGBA(image.Rect(0, 0, 7, 5))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	cases := []struct {
		name string
		src  Source
		W, H int
		tol  int
	}{
		{"latent", Latent(lat, 4, 6, 5), 37, 29, 1},
		{"latent-3ch", Latent(lat[:3*6*5], 3, 6, 5), 20, 24, 1},
		{"image", Image(img), 45, 31, 0},
	}
	for _, tc := range cases {
		for _, bgra := range []bool{false, true} {
			r := Fit(tc.src.W, tc.src.H, tc.W, tc.H)
			if _, err := c.Convert(tc.src, tc.W, tc.H, r, bgra); err != nil {
				t.Fatal(err)
			}
			got, err := c.Pixels(tc.W, tc.H)
			if err != nil {
				t.Fatal(err)
			}
			want := Reference(tc.src, tc.W, tc.H, r, bgra)
			bad := 0
			for i := range want {
				if !near(got[i], want[i], tc.tol) {
					if bad < 5 {
						t.Errorf("%s bgra=%v: pixel (%d, %d) = %08x, want %08x", tc.name, bgra, i%tc.W, i/tc.W, got[i], want[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s bgra=%v: %d of %d pixels differ", tc.name, bgra, bad, len(want))
			}
		}
	}
	// The nearest path shows each image pixel with its exact bytes.
	r := Fit(7, 5, 45, 31)
	want := Reference(Image(img), 45, 31, r, false)
	for y := range 5 {
		for x := range 7 {
			p := want[(r.Y+y*r.H/5)*45+r.X+x*r.W/7]
			o := img.PixOffset(x, y)
			if p != uint32(img.Pix[o])|uint32(img.Pix[o+1])<<8|uint32(img.Pix[o+2])<<16|0xff000000 {
				t.Fatalf("image pixel (%d, %d) shows as %08x", x, y, p)
			}
		}
	}
}

func near(a, b uint32, tol int) bool {
	for s := 0; s < 32; s += 8 {
		d := int(a>>s&0xff) - int(b>>s&0xff)
		if d < -tol || d > tol {
			return false
		}
	}
	return true
}
