package vk

/*
#include <stdlib.h>
#include "present.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// ErrNoPresent is wrapped by errors that mean "this driver or device cannot
// show pictures in a window" (no VK_KHR_surface, VK_KHR_xlib_surface or
// VK_KHR_swapchain, or a queue that cannot present). Callers fall back to
// working without a window.
var ErrNoPresent = errors.New("vk: no presentation support")

// Presenter shows pictures in an X11 window through a swapchain: Present
// copies a buffer of packed 8-bit pixels (as many as the swapchain has)
// into the next swapchain image and presents it. The device must have been
// opened with Options.Present. Like other children of a Device it must be
// closed before the device, and before the window it draws into is
// destroyed.
type Presenter struct {
	d      *Device
	p      *C.NvPresent // C memory: holds the handles the driver writes
	closed atomic.Bool
	stale  bool // the swapchain no longer matches the window
	// reqW, reqH is the window size the swapchain was made for (the
	// surface may have dictated another size).
	reqW, reqH int
}

// newXlibPresenter makes a presenter for an Xlib window: dpy is the
// Display* and window the XID; w, h is the window's framebuffer size.
// Called by the glfw glue (present_glfw.go), which is built only with the
// preview tag.
func (d *Device) newXlibPresenter(dpy unsafe.Pointer, window uint64, w, h int) (*Presenter, error) {
	if d.isClosed() {
		return nil, fmt.Errorf("vk: new presenter: %w", errClosedDevice)
	}
	if !d.opts.Present {
		return nil, errors.New("vk: new presenter: the device was opened without Options.Present")
	}
	if dpy == nil || window == 0 {
		return nil, errors.New("vk: new presenter: no X11 display or window")
	}
	p := (*C.NvPresent)(C.calloc(1, C.size_t(unsafe.Sizeof(C.NvPresent{}))))
	if p == nil {
		return nil, fmt.Errorf("vk: new presenter: %w", ErrOutOfHostMemory)
	}
	var supported C.int
	var what *C.char
	r := C.nv_present_init(d.inst.instance, d.pd, d.dev, C.uint32_t(d.family), dpy, C.ulong(window), p, &supported, &what)
	if r != C.VK_SUCCESS {
		C.free(unsafe.Pointer(p))
		err := Result(r)
		if r == C.VK_ERROR_EXTENSION_NOT_PRESENT {
			return nil, fmt.Errorf("vk: new presenter: %s: %w (%w)", C.GoString(what), ErrNoPresent, err)
		}
		return nil, fmt.Errorf("vk: new presenter: %s: %w", C.GoString(what), err)
	}
	pr := &Presenter{d: d, p: p}
	if supported == 0 {
		pr.release()
		return nil, fmt.Errorf("%w: queue family %d of %s cannot present to this window", ErrNoPresent, d.family, d.info.Name)
	}
	if err := pr.recreate(w, h); err != nil {
		pr.release()
		return nil, err
	}
	if err := d.register(pr); err != nil {
		pr.release()
		return nil, fmt.Errorf("vk: new presenter: %w", err)
	}
	return pr, nil
}

// recreate builds the swapchain for a w x h window, replacing the old one.
func (pr *Presenter) recreate(w, h int) error {
	if r := C.nv_device_wait_idle(pr.d.dev); r != C.VK_SUCCESS {
		return fmt.Errorf("vk: swapchain: wait idle: %w", Result(r))
	}
	r := C.nv_present_swapchain(pr.p, C.uint32_t(max(w, 1)), C.uint32_t(max(h, 1)))
	switch r {
	case C.VK_SUCCESS:
		pr.stale = false
		pr.reqW, pr.reqH = w, h
		return nil
	case C.VK_ERROR_FORMAT_NOT_SUPPORTED:
		return fmt.Errorf("%w: the window's surface offers no 8-bit BGRA/RGBA format usable as a copy destination", ErrNoPresent)
	}
	return fmt.Errorf("vk: create swapchain for %dx%d: %w", w, h, Result(r))
}

// Size is the swapchain's size in pixels: Present takes exactly
// width*height pixels.
func (pr *Presenter) Size() (w, h int) { return int(pr.p.width), int(pr.p.height) }

// BGRA reports the byte order of a pixel: B, G, R, A in memory when true,
// else R, G, B, A.
func (pr *Presenter) BGRA() bool {
	f := pr.p.format
	return f == C.VK_FORMAT_B8G8R8A8_UNORM || f == C.VK_FORMAT_B8G8R8A8_SRGB
}

// ErrResized is returned by Present when the window's size changed: the
// swapchain has been rebuilt for the new size (see Size), and the picture
// must be made again at that size.
var ErrResized = errors.New("vk: present: the window changed size")

// Present shows src, Size() packed 32-bit pixels in BGRA() order, and
// waits until the copy is done. w, h is the window's current framebuffer
// size, used when the swapchain must be rebuilt.
func (pr *Presenter) Present(src *Buffer, w, h int) error {
	if pr.closed.Load() {
		return errors.New("vk: present: presenter is closed")
	}
	if src == nil || src.closed.Load() || src.d != pr.d {
		return errors.New("vk: present: the buffer is nil, closed or of another device")
	}
	if pr.stale || w != pr.reqW || h != pr.reqH {
		if err := pr.recreate(w, h); err != nil {
			return err
		}
		return ErrResized
	}
	sw, sh := pr.Size()
	if need := int64(4 * sw * sh); src.size < need {
		return fmt.Errorf("vk: present: buffer of %d bytes, the %dx%d swapchain needs %d", src.size, sw, sh, need)
	}
	var index C.uint32_t
	r := C.nv_present_acquire(pr.p, pr.d.waitTimeout(), &index)
	switch r {
	case C.VK_SUCCESS:
	case C.VK_SUBOPTIMAL_KHR:
		pr.stale = true // show this frame, rebuild before the next
	case C.VK_ERROR_OUT_OF_DATE_KHR:
		pr.stale = true
		return fmt.Errorf("vk: present: acquire: %w", ErrResized)
	default:
		return fmt.Errorf("vk: present: acquire image: %w", Result(r))
	}
	if r := C.nv_present_record(pr.p, index, src.buf); r != C.VK_SUCCESS {
		return fmt.Errorf("vk: present: record copy: %w", Result(r))
	}
	if err := pr.d.submit(pr.p.cmd.cb, pr.p.cmd.fence); err != nil {
		return fmt.Errorf("vk: present: %w", err)
	}
	if err := pr.d.wait(pr.p.cmd.fence); err != nil {
		return fmt.Errorf("vk: present: %w", err)
	}
	pr.d.queueMu.Lock()
	r = C.nv_present_queue(pr.p, pr.d.queue, index)
	pr.d.queueMu.Unlock()
	switch r {
	case C.VK_SUCCESS:
	case C.VK_SUBOPTIMAL_KHR, C.VK_ERROR_OUT_OF_DATE_KHR:
		// Rebuilt on the next Present; this picture may not have shown.
		pr.stale = true
	default:
		return fmt.Errorf("vk: present: %w", Result(r))
	}
	return nil
}

// Wait blocks until the device is idle, so that what was presented has
// been handed to the window system (tests take screenshots after it).
func (pr *Presenter) Wait() error {
	return check("wait idle", int32(C.nv_device_wait_idle(pr.d.dev)))
}

func (pr *Presenter) describe() string { return "Presenter" }
func (pr *Presenter) order() int       { return 0 }
func (pr *Presenter) markClosed() bool { return pr.closed.CompareAndSwap(false, true) }

func (pr *Presenter) release() {
	if pr.p == nil {
		return
	}
	// The copy may still be read by the presentation engine.
	C.nv_device_wait_idle(pr.d.dev)
	C.nv_present_destroy(pr.p)
	C.free(unsafe.Pointer(pr.p))
	pr.p = nil
}

// Close destroys the swapchain and the surface. Closing twice is a no-op.
func (pr *Presenter) Close() error {
	if pr == nil || !pr.d.unregister(pr) {
		return nil
	}
	pr.release()
	return nil
}
