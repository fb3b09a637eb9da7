package preview

// Key is a key press in a preview window: Name is "up", "down", "left",
// "right", "pageup", "pagedown", "tab", "space", "enter", "escape", or the
// printed character of a letter, digit or punctuation key ("s", "[", "=").
type Key struct {
	Name  string
	Shift bool
}

// Options configure a window.
type Options struct {
	Title         string
	Width, Height int // initial size in pixels (0: 512)
}

func (o *Options) defaults() {
	if o.Width <= 0 {
		o.Width = 512
	}
	if o.Height <= 0 {
		o.Height = 512
	}
	if o.Title == "" {
		o.Title = "neti"
	}
}
