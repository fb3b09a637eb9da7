// Command gen-moon draws the images of testdata/concepts/moon: a crescent
// (a shape the built-in model never saw) on six plain backgrounds, 64x64,
// anti-aliased by 4x4 supersampling. It exists so the committed demo concept
// can be re-made: go run ./scripts/gen-moon -o testdata/concepts/moon
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("o", "testdata/concepts/moon", "output folder")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fg := color.RGBA{245, 245, 235, 255} // white moon
	bgs := []color.RGBA{{30, 50, 200, 255}, {200, 30, 30, 255}, {30, 160, 50, 255}, {130, 40, 170, 255}, {10, 10, 10, 255}, {240, 140, 20, 255}}
	for i, bg := range bgs {
		// Vary size, position and tilt a little, as the base dataset does.
		r := 20.0 + float64(i%3)*2.5
		cx, cy := 32+float64(i%2)*2-1, 32-float64(i%3)+1
		tilt := (float64(i) - 2.5) * 0.12
		img := image.NewRGBA(image.Rect(0, 0, 64, 64))
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				in := 0
				for sy := 0; sy < 4; sy++ {
					for sx := 0; sx < 4; sx++ {
						px := float64(x) + (float64(sx)+0.5)/4
						py := float64(y) + (float64(sy)+0.5)/4
						dx, dy := px-cx, py-cy
						// The bite: a second disc shifted right-up along the tilt.
						ox, oy := dx-r*0.55*math.Cos(tilt), dy+r*0.55*math.Sin(tilt)-r*0.15
						if dx*dx+dy*dy <= r*r && ox*ox+oy*oy > (r*0.85)*(r*0.85) {
							in++
						}
					}
				}
				a := float64(in) / 16
				mix := func(f, b uint8) uint8 { return uint8(math.Round(a*float64(f) + (1-a)*float64(b))) }
				img.SetRGBA(x, y, color.RGBA{mix(fg.R, bg.R), mix(fg.G, bg.G), mix(fg.B, bg.B), 255})
			}
		}
		f, err := os.Create(filepath.Join(*out, fmt.Sprintf("%02d.png", i)))
		if err == nil {
			err = png.Encode(f, img)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
