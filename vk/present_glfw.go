//go:build preview

package vk

import (
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// NewWindowPresenter makes a presenter for a glfw window on X11 (glfw
// created without a client API: glfw.WindowHint(glfw.ClientAPI,
// glfw.NoAPI)). The surface is made here from the window's Xlib Display
// and XID rather than with glfw's CreateWindowSurface, which returns the
// address of a local instead of the handle (go vet rightly flags reading
// it), and so that the glfw C pointer never leaves package vk.
//
// Built only with the preview tag, so that a default build links no X11.
func (d *Device) NewWindowPresenter(w *glfw.Window) (*Presenter, error) {
	fw, fh := w.GetFramebufferSize()
	return d.newXlibPresenter(unsafe.Pointer(glfw.GetX11Display()), uint64(w.GetX11Window()), fw, fh)
}
