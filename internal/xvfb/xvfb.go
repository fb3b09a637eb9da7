// Package xvfb lets tests show windows on a virtual X server and take
// screenshots of them: Display finds or starts an Xvfb, Screenshot reads a
// window's pixels back from the server with xwd, as a person looking at
// the screen would see them.
package xvfb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Display makes sure DISPLAY names an X server with a 24-bit screen: the
// one given (CI runs the tests under xvfb-run -s "-screen 0 1280x720x24"),
// else an Xvfb started for the test binary and stopped at the end of the
// test. Without either, and without xwd, the test skips — or fails when
// REQUIRE_VULKAN=1 (CI), so a missing package cannot turn the check off.
func Display(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("xwd"); err != nil {
		unavailable(t, "xwd not found (apt-get install x11-apps)")
	}
	if os.Getenv("DISPLAY") != "" {
		return
	}
	bin, err := exec.LookPath("Xvfb")
	if err != nil {
		unavailable(t, "no DISPLAY and no Xvfb (apt-get install xvfb)")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// -displayfd: the server picks a free display and writes its number.
	cmd := exec.Command(bin, "-displayfd", "3", "-screen", "0", "1280x720x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	num := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		num <- strings.TrimSpace(line)
		r.Close()
	}()
	select {
	case n := <-num:
		if n == "" {
			t.Fatal("Xvfb did not report its display")
		}
		t.Setenv("DISPLAY", ":"+n)
	case <-time.After(10 * time.Second):
		t.Fatal("Xvfb did not start within 10 s")
	}
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("REQUIRE_VULKAN") == "1" {
		t.Fatalf("REQUIRE_VULKAN=1 but %s", why)
	}
	t.Skip(why)
}

// Screenshot returns what the X server shows of a window, through xwd.
func Screenshot(xid uint64) (*image.NRGBA, error) {
	out, err := exec.Command("xwd", "-silent", "-id", fmt.Sprintf("%#x", xid)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("xwd: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("xwd: %w", err)
	}
	return Decode(out)
}

// Decode reads an XWD file (X11 window dump, version 7) of a TrueColor
// ZPixmap, the format xwd writes for 24-bit screens.
func Decode(b []byte) (*image.NRGBA, error) {
	const headerWords = 25
	if len(b) < 4*headerWords {
		return nil, errors.New("xwd: file too short")
	}
	h := make([]uint32, headerWords)
	for i := range h {
		h[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	headerSize, version, format := h[0], h[1], h[2]
	width, height := int(h[4]), int(h[5])
	byteOrder, bpp, bpl := h[7], int(h[11]), int(h[12])
	rmask, gmask, bmask := h[14], h[15], h[16]
	ncolors := int(h[19])
	switch {
	case version != 7:
		return nil, fmt.Errorf("xwd: version %d, want 7", version)
	case format != 2:
		return nil, fmt.Errorf("xwd: pixmap format %d, want ZPixmap (2)", format)
	case bpp != 24 && bpp != 32:
		return nil, fmt.Errorf("xwd: %d bits per pixel, want 24 or 32 (run Xvfb with -screen 0 WxHx24)", bpp)
	case width <= 0 || height <= 0 || width > 1<<15 || height > 1<<15:
		return nil, fmt.Errorf("xwd: size %dx%d", width, height)
	}
	// Xvfb reports 24 bits per pixel for packed 3-byte pixels, each row
	// padded to bytes_per_line.
	step := bpp / 8
	off := int(headerSize) + 12*ncolors
	if bpl < width*step || off+bpl*height > len(b) {
		return nil, fmt.Errorf("xwd: %d bytes for %dx%d at %d bytes per line", len(b), width, height, bpl)
	}
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		row := b[off+y*bpl:]
		for x := range width {
			var v uint32
			for k := range step {
				if byteOrder == 0 { // LSBFirst
					v |= uint32(row[x*step+k]) << (8 * k)
				} else {
					v = v<<8 | uint32(row[x*step+k])
				}
			}
			o := img.PixOffset(x, y)
			img.Pix[o] = channel(v, rmask)
			img.Pix[o+1] = channel(v, gmask)
			img.Pix[o+2] = channel(v, bmask)
			img.Pix[o+3] = 255
		}
	}
	return img, nil
}

// channel extracts an 8-bit channel given its mask.
func channel(v, mask uint32) uint8 {
	if mask == 0 {
		return 0
	}
	shift := 0
	for mask>>shift&1 == 0 {
		shift++
	}
	return uint8(v & mask >> shift)
}
