//go:build !preview

package preview

import "github.com/neti-project/neti/vk"

// Window is a preview window; in this build (without the preview tag)
// none can be opened.
type Window struct{}

// Built reports whether this binary has the preview window.
const Built = false

// Check reports why no window can be opened: always ErrNotBuilt here.
func Check() error { return ErrNotBuilt }

// Open returns ErrNotBuilt.
func Open(*vk.Device, Options) (*Window, error) { return nil, ErrNotBuilt }

// Show does nothing.
func (*Window) Show(Source) error { return nil }

// Poll does nothing.
func (*Window) Poll() {}

// Wait does nothing.
func (*Window) Wait(float64) {}

// Closed reports true: there is no window.
func (*Window) Closed() bool { return true }

// Keys returns nothing.
func (*Window) Keys() []Key { return nil }

// SetTitle does nothing.
func (*Window) SetTitle(string) {}

// XID returns 0.
func (*Window) XID() uint64 { return 0 }

// Size returns 0, 0.
func (*Window) Size() (int, int) { return 0, 0 }

// Close does nothing.
func (*Window) Close() error { return nil }
