package main

import (
	"errors"
	"fmt"
	"image"
	"io"

	"github.com/neti-project/neti/internal/preview"
	"github.com/neti-project/neti/vk"
)

// previewSize is the window for images of w x h: the image scaled up by a
// whole factor to about 512 pixels, so small models' images are not tiny.
func previewSize(w, h int) (int, int) {
	k := max(1, 512/max(w, h))
	return min(w*k, 1024), min(h*k, 1024)
}

// openDevice opens the Vulkan device, and with want a preview window on it.
// The window is a nice-to-have: when it cannot be shown (a build without
// the preview tag, no DISPLAY, no X libraries, a driver that cannot
// present) one line says why and the work goes on without it, on a device
// opened as usual. Only a device that cannot be opened at all is an error.
func openDevice(device string, want bool, title string, w, h int, stderr io.Writer) (*vk.Device, *preview.Window, error) {
	if want {
		if win, dev, why := tryPreview(device, title, w, h); win != nil {
			return dev, win, nil
		} else {
			fmt.Fprintf(stderr, "%v; continuing without the preview window\n", why)
		}
	}
	dev, err := vk.NewDevice(vk.Options{Device: device})
	return dev, nil, err
}

func tryPreview(device, title string, w, h int) (*preview.Window, *vk.Device, error) {
	if err := preview.Check(); err != nil {
		return nil, nil, err
	}
	dev, err := vk.NewDevice(vk.Options{Device: device, Present: true})
	if err != nil {
		return nil, nil, err
	}
	W, H := previewSize(w, h)
	win, err := preview.Open(dev, preview.Options{Title: title, Width: W, Height: H})
	if err != nil {
		return nil, nil, errors.Join(err, dev.Close())
	}
	return win, dev, nil
}

// previewer shows a generation in a window that may be nil (no preview);
// the first failure to draw closes the window with one message, and the
// generation goes on.
type previewer struct {
	win    *preview.Window
	stderr io.Writer
	// shown, when set (tests), is called after each final image is shown.
	shown func(*preview.Window, *image.NRGBA)
}

func (p *previewer) active() bool { return p.win != nil && !p.win.Closed() }

func (p *previewer) show(s preview.Source) {
	if !p.active() {
		return
	}
	if err := p.win.Show(s); err != nil {
		fmt.Fprintf(p.stderr, "preview: %v; closing the window, the work goes on\n", err)
		p.win.Close()
		p.win = nil
		return
	}
	p.win.Poll()
}

func (p *previewer) latents(lat []float32, c, h, w int) { p.show(preview.Latent(lat, c, h, w)) }
func (p *previewer) image(img *image.NRGBA) {
	p.show(preview.Image(img))
	if p.shown != nil && p.active() {
		p.shown(p.win, img)
	}
}

func (p *previewer) title(s string) {
	if p.active() {
		p.win.SetTitle(s)
	}
}

// hold keeps the window open until the user closes it or presses Escape,
// q or Enter.
func (p *previewer) hold() {
	for p.active() {
		p.win.Wait(0.25)
		for _, k := range p.win.Keys() {
			if k.Name == "escape" || k.Name == "q" || k.Name == "enter" {
				return
			}
		}
	}
}

func (p *previewer) close() {
	if p.win != nil {
		p.win.Close()
		p.win = nil
	}
}
