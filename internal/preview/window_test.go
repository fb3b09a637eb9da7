//go:build preview

package preview

import (
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/neti-project/neti/internal/xvfb"
	"github.com/neti-project/neti/vk"
)

// presentDevice opens a device that can present, with validation; any
// validation message fails the test.
func presentDevice(t *testing.T) *vk.Device {
	t.Helper()
	dev, err := vk.NewDevice(vk.Options{Validation: true, Present: true, PipelineCacheDir: "-"})
	if err != nil {
		if os.Getenv("REQUIRE_VULKAN") == "1" {
			t.Fatalf("REQUIRE_VULKAN=1 but: %v", err)
		}
		t.Skip("no Vulkan device that can present:", err)
	}
	t.Cleanup(func() {
		for _, m := range dev.Messages() {
			t.Errorf("validation: %v", m)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("device close: %v", err)
		}
	})
	return dev
}

// The path from a GPU buffer to the screen: a window on a (virtual) X
// server shows latents, then an image; a screenshot of the window taken
// back from the X server has the window's size and, pixel for pixel, the
// image scaled by a whole factor and centred on the grey background.
func TestWindowShowsImage(t *testing.T) {
	runtime.LockOSThread() // glfw: one thread for every call
	defer runtime.UnlockOSThread()
	xvfb.Display(t)
	dev := presentDevice(t)
	const W, H = 320, 240
	w, err := Open(dev, Options{Title: "neti preview test", Width: W, Height: H})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	}()
	if gw, gh := w.Size(); gw != W || gh != H {
		t.Fatalf("swapchain %dx%d, want %dx%d", gw, gh, W, H)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	lat := make([]float32, 4*8*8)
	for i := range lat {
		lat[i] = float32(rng.NormFloat64())
	}
	if err := w.Show(Latent(lat, 4, 8, 8)); err != nil {
		t.Fatal(err)
	}
	w.Poll()
	// An image with a different colour in every pixel, so that a shift,
	// flip, swapped channel or wrong scale shows.
	img := image.NewNRGBA(image.Rect(0, 0, 48, 36))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	if err := w.Show(Image(img)); err != nil {
		t.Fatal(err)
	}
	w.Poll()
	want := Reference(Image(img), W, H, Fit(48, 36, W, H), false)
	// The X server gets the picture asynchronously: retry the screenshot
	// for a while, then report the last mismatch.
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		w.Poll()
		shot, err := xvfb.Screenshot(w.XID())
		if err != nil {
			t.Fatal(err)
		}
		if last = compare(shot, want, img, W, H); last == nil {
			return
		}
	}
	t.Fatal(last)
}

// compare checks a screenshot against the expected window pixels (RGBA
// packed, R in the low byte) and each image pixel against its block.
func compare(shot *image.NRGBA, want []uint32, img *image.NRGBA, W, H int) error {
	if b := shot.Bounds(); b.Dx() != W || b.Dy() != H {
		return fmt.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), W, H)
	}
	bad, first := 0, ""
	for y := range H {
		for x := range W {
			o := shot.PixOffset(x, y)
			got := uint32(shot.Pix[o]) | uint32(shot.Pix[o+1])<<8 | uint32(shot.Pix[o+2])<<16 | 0xff000000
			if got != want[y*W+x] {
				if bad == 0 {
					first = fmt.Sprintf("(%d, %d) = %06x, want %06x", x, y, got&0xffffff, want[y*W+x]&0xffffff)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d screenshot pixels differ, first %s", bad, W*H, first)
	}
	ib := img.Bounds()
	r := Fit(ib.Dx(), ib.Dy(), W, H)
	k := r.W / ib.Dx()
	for y := range ib.Dy() {
		for x := range ib.Dx() {
			o := img.PixOffset(x, y)
			so := shot.PixOffset(r.X+x*k+k/2, r.Y+y*k+k/2)
			for c := range 3 {
				if shot.Pix[so+c] != img.Pix[o+c] {
					return fmt.Errorf("image pixel (%d, %d) shows as %v, want %v", x, y, shot.Pix[so:so+3], img.Pix[o:o+3])
				}
			}
		}
	}
	return nil
}

// Without a display, Check says so in one sentence and Open fails cleanly
// (no panic, no glfw log noise).
func TestNoDisplay(t *testing.T) {
	t.Setenv("DISPLAY", "")
	err := Check()
	if err == nil {
		t.Fatal("Check passed without DISPLAY")
	}
	if _, err := Open(nil, Options{}); err == nil || errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Open without DISPLAY: %v", err)
	}
}
