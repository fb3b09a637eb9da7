//go:build preview

package preview

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/neti-project/neti/vk"
)

// glfw must be called from the thread that initialised it, the main thread
// in a program: package init runs on the main goroutine, so locking it here
// keeps main() on the main thread.
func init() { runtime.LockOSThread() }

// Built reports whether this binary has the preview window.
const Built = true

// glfw is initialised once per process and terminated when the last
// window closes.
var glfwState struct {
	sync.Mutex
	windows int
}

// Check reports why no window can be opened here, or nil. It does not
// initialise glfw: that happens in Open.
func Check() error {
	if os.Getenv("DISPLAY") == "" {
		// glfw would only log this and carry on uninitialised.
		return errors.New("preview: no X display (DISPLAY is not set)")
	}
	return nil
}

func initGLFW() error {
	glfwState.Lock()
	defer glfwState.Unlock()
	if glfwState.windows == 0 {
		if err := Check(); err != nil {
			return err
		}
		if err := glfw.Init(); err != nil {
			return fmt.Errorf("preview: cannot open the X display %q: %w", os.Getenv("DISPLAY"), err)
		}
	}
	glfwState.windows++
	return nil
}

func doneGLFW() {
	glfwState.Lock()
	defer glfwState.Unlock()
	if glfwState.windows--; glfwState.windows == 0 {
		glfw.Terminate()
	}
}

// Window is a preview window: glfw for the window and its keys, the
// device's swapchain for its pixels, latent_rgb.comp to make them. All its
// methods must be called from the goroutine that opened it.
type Window struct {
	win    *glfw.Window
	pr     *vk.Presenter
	conv   *Converter
	last   *Source // redrawn when the window is exposed or resized
	dirty  bool
	keys   []Key
	closed bool
}

// Open opens a window on dev, which must have been opened with
// vk.Options{Present: true}.
func Open(dev *vk.Device, o Options) (w *Window, err error) {
	o.defaults()
	if err := initGLFW(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			doneGLFW()
		}
	}()
	// A glfw error is a panic in go-gl/glfw; a broken X connection must
	// still not crash the generation the window only watches.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("preview: open window: %v", r)
		}
	}()
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI) // Vulkan draws, not GL: no context
	glfw.WindowHint(glfw.Resizable, glfw.True)
	win, err := glfw.CreateWindow(o.Width, o.Height, o.Title, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("preview: create window: %w", err)
	}
	pr, err := dev.NewWindowPresenter(win)
	if err != nil {
		win.Destroy()
		return nil, fmt.Errorf("preview: %w", err)
	}
	conv, err := NewConverter(dev)
	if err != nil {
		pr.Close()
		win.Destroy()
		return nil, err
	}
	w = &Window{win: win, pr: pr, conv: conv}
	win.SetKeyCallback(w.onKey)
	win.SetRefreshCallback(func(*glfw.Window) { w.dirty = true })
	win.SetFramebufferSizeCallback(func(*glfw.Window, int, int) { w.dirty = true })
	return w, nil
}

var keyNames = map[glfw.Key]string{
	glfw.KeyUp: "up", glfw.KeyDown: "down", glfw.KeyLeft: "left", glfw.KeyRight: "right",
	glfw.KeyPageUp: "pageup", glfw.KeyPageDown: "pagedown", glfw.KeyTab: "tab",
	glfw.KeySpace: "space", glfw.KeyEnter: "enter", glfw.KeyKPEnter: "enter", glfw.KeyEscape: "escape",
	glfw.KeyKPAdd: "+", glfw.KeyKPSubtract: "-",
}

func (w *Window) onKey(_ *glfw.Window, key glfw.Key, scancode int, action glfw.Action, mods glfw.ModifierKey) {
	if action == glfw.Release {
		return
	}
	name, ok := keyNames[key]
	if !ok {
		// The printed character, so that keys follow the keyboard layout.
		name = strings.ToLower(glfw.GetKeyName(key, scancode))
		if name == "" {
			return
		}
	}
	w.keys = append(w.keys, Key{Name: name, Shift: mods&glfw.ModShift != 0})
}

// Show draws s, scaled to fit the window, and presents it.
func (w *Window) Show(s Source) error {
	if w.closed {
		return nil
	}
	w.last = &s
	w.dirty = false
	// A resize between measuring and presenting rebuilds the swapchain;
	// draw again at the new size (twice at most: the user may keep
	// dragging).
	for range 3 {
		fw, fh := w.win.GetFramebufferSize()
		if fw == 0 || fh == 0 {
			return nil // minimised
		}
		W, H := w.pr.Size()
		buf, err := w.conv.Convert(s, W, H, Fit(s.W, s.H, W, H), w.pr.BGRA())
		if err != nil {
			return err
		}
		err = w.pr.Present(buf, fw, fh)
		if errors.Is(err, vk.ErrResized) {
			continue
		}
		if err != nil {
			return fmt.Errorf("preview: %w", err)
		}
		return nil
	}
	return nil
}

// Poll handles pending window events (keys, close, expose) without
// waiting, and redraws the last picture if the window needs it.
func (w *Window) Poll() {
	if w.closed {
		return
	}
	glfw.PollEvents()
	w.redraw()
}

// Wait waits up to seconds for window events, then handles them.
func (w *Window) Wait(seconds float64) {
	if w.closed {
		return
	}
	glfw.WaitEventsTimeout(seconds)
	w.redraw()
}

func (w *Window) redraw() {
	if w.dirty && w.last != nil {
		_ = w.Show(*w.last) // a failed redraw leaves the old picture; the next Show reports
	}
}

// Closed reports whether the user closed the window (or it was never
// opened).
func (w *Window) Closed() bool { return w == nil || w.closed || w.win.ShouldClose() }

// Keys returns the key presses since the last call.
func (w *Window) Keys() []Key {
	k := w.keys
	w.keys = nil
	return k
}

// SetTitle sets the window title.
func (w *Window) SetTitle(s string) {
	if !w.closed {
		w.win.SetTitle(s)
	}
}

// XID is the X11 window id (tests take screenshots with xwd -id).
func (w *Window) XID() uint64 { return uint64(w.win.GetX11Window()) }

// Size is the window's size in pixels, the size of what Show draws.
func (w *Window) Size() (int, int) { return w.pr.Size() }

// Close releases the swapchain and destroys the window. Closing twice is a
// no-op.
func (w *Window) Close() error {
	if w == nil || w.closed {
		return nil
	}
	w.closed = true
	// The surface must go before the X window it belongs to.
	err := errors.Join(w.conv.Close(), w.pr.Close())
	w.win.Destroy()
	doneGLFW()
	return err
}
