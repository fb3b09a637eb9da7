// Package progress reports the progress of a loop of steps on a terminal
// (one line redrawn in place) or a log (a line now and then): step N/M,
// the rate in it/s and the estimated time left.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar reports one loop. A nil *Bar is valid and silent, so callers can
// pass nil for --quiet.
type Bar struct {
	w     io.Writer
	label string
	total int
	tty   bool
	now   func() time.Time
	start time.Time
	last  time.Time // last line written
	done  int
	width int // length of the last in-place line, to blank its rest
}

// Options tune New.
type Options struct {
	// Quiet makes New return nil (no output at all).
	Quiet bool
	// Terminal forces in-place redrawing on or off; nil detects whether w
	// is a character device.
	Terminal *bool
	// Now replaces the clock (tests).
	Now func() time.Time
}

// minInterval spaces the lines written to a log (not a terminal), which
// would otherwise get one line per step.
const minInterval = 2 * time.Second

// New starts reporting a loop of total steps to w.
func New(w io.Writer, label string, total int, o Options) *Bar {
	if o.Quiet || w == nil || total <= 0 {
		return nil
	}
	b := &Bar{w: w, label: label, total: total, now: o.Now}
	if b.now == nil {
		b.now = time.Now
	}
	if o.Terminal != nil {
		b.tty = *o.Terminal
	} else {
		b.tty = isTerminal(w)
	}
	b.start = b.now()
	b.last = b.start
	return b
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Step records that step n (1-based) is finished.
func (b *Bar) Step(n int) {
	if b == nil {
		return
	}
	b.done = min(max(n, 0), b.total)
	now := b.now()
	if !b.tty && b.done < b.total && now.Sub(b.last) < minInterval {
		return
	}
	b.last = now
	b.write(b.line(now), b.done == b.total)
}

// Done ends the report (a newline after an in-place line); it is safe to
// call more than once and after an error mid-loop.
func (b *Bar) Done() {
	if b == nil || b.w == nil {
		return
	}
	if b.tty && b.width > 0 {
		fmt.Fprintln(b.w)
	}
	b.w = nil
}

func (b *Bar) line(now time.Time) string {
	elapsed := now.Sub(b.start)
	s := fmt.Sprintf("%s %d/%d", b.label, b.done, b.total)
	if b.done > 0 && elapsed > 0 {
		rate := float64(b.done) / elapsed.Seconds()
		if rate >= 1 {
			s += fmt.Sprintf("  %.2f it/s", rate)
		} else {
			s += fmt.Sprintf("  %.2f s/it", 1/rate)
		}
		if b.done < b.total {
			left := time.Duration(float64(elapsed) / float64(b.done) * float64(b.total-b.done))
			s += "  ETA " + dur(left)
		} else {
			s += "  in " + dur(elapsed)
		}
	}
	return s
}

func (b *Bar) write(s string, final bool) {
	if b.w == nil {
		return
	}
	if !b.tty {
		fmt.Fprintln(b.w, s)
		return
	}
	pad := ""
	if n := b.width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(b.w, "\r"+s+pad)
	b.width = len(s)
	if final {
		fmt.Fprintln(b.w)
		b.width = 0
	}
}

// dur formats a duration for humans: 4s, 1m05s, 2h03m.
func dur(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
}
