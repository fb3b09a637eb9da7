package neti

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for training images
	_ "image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/image/draw"
)

// LoadImages reads every PNG and JPEG in dir (sorted by name), applies the
// EXIF orientation of JPEGs, squashes each to size x size with a bicubic
// filter (NeTI does not crop) and returns them as [3, size, size] planes in
// [-1, 1]. Every unreadable file is named in one error.
func LoadImages(dir string, size int) ([][]float32, []string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("neti: images: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("neti: images: no PNG or JPEG files in %s", dir)
	}
	var out [][]float32
	var bad []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		img, err := loadImage(p)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		out = append(out, ToPlanes(Resize(img, size)))
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("neti: images: cannot read %d of %d files:\n  %s", len(bad), len(names), strings.Join(bad, "\n  "))
	}
	return out, names, nil
}

func loadImage(path string) (image.Image, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, format, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not a decodable image: %w", err)
	}
	if b := img.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return nil, fmt.Errorf("empty image")
	}
	if format == "jpeg" {
		img = Orient(img, exifOrientation(raw))
	}
	return img, nil
}

// Resize squashes img to size x size with a Catmull-Rom (bicubic, a=-0.5)
// kernel, widened when shrinking like PIL's BICUBIC.
func Resize(img image.Image, size int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	return dst
}

// ToPlanes converts to CHW float planes in [-1, 1] (x/127.5 - 1).
func ToPlanes(img *image.RGBA) []float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := img.PixOffset(b.Min.X+x, b.Min.Y+y)
			for c := 0; c < 3; c++ {
				out[c*w*h+y*w+x] = float32(img.Pix[o+c])/127.5 - 1
			}
		}
	}
	return out
}

// FlipPlanes mirrors CHW planes horizontally.
func FlipPlanes(p []float32, c, h, w int) []float32 {
	out := make([]float32, len(p))
	for ci := 0; ci < c; ci++ {
		for y := 0; y < h; y++ {
			row := (ci*h + y) * w
			for x := 0; x < w; x++ {
				out[row+x] = p[row+w-1-x]
			}
		}
	}
	return out
}

// Orient applies an EXIF orientation (1..8) so the image is upright.
func Orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			dst.Set(dx, dy, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return dst
}

// exifOrientation finds tag 0x0112 in a JPEG's APP1 Exif segment (1 when
// absent or unreadable: orientation is a hint, never a reason to fail).
func exifOrientation(jpg []byte) int {
	if len(jpg) < 4 || jpg[0] != 0xFF || jpg[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(jpg) && jpg[i] == 0xFF {
		marker := jpg[i+1]
		size := int(binary.BigEndian.Uint16(jpg[i+2:]))
		if size < 2 || i+2+size > len(jpg) {
			return 1
		}
		seg := jpg[i+4 : i+2+size]
		if marker == 0xE1 && len(seg) > 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		if marker == 0xDA { // start of scan: no more metadata
			return 1
		}
		i += 2 + size
	}
	return 1
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for k := 0; k < n; k++ {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}
