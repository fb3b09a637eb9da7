package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func run(tty bool, total int, stepEvery time.Duration) string {
	var buf bytes.Buffer
	c := &clock{time.Unix(1000, 0)}
	b := New(&buf, "step", total, Options{Terminal: &tty, Now: c.now})
	for i := 1; i <= total; i++ {
		c.t = c.t.Add(stepEvery)
		b.Step(i)
	}
	b.Done()
	return buf.String()
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		name  string
		tty   bool
		total int
		every time.Duration
		want  string
	}{
		{"terminal", true, 3, 500 * time.Millisecond,
			"\rstep 1/3  2.00 it/s  ETA 1s\rstep 2/3  2.00 it/s  ETA 1s\rstep 3/3  2.00 it/s  in 2s \n"},
		{"log throttled", false, 5, time.Second,
			"step 2/5  1.00 it/s  ETA 3s\nstep 4/5  1.00 it/s  ETA 1s\nstep 5/5  1.00 it/s  in 5s\n"},
		{"slow steps", false, 2, 90 * time.Second,
			"step 1/2  90.00 s/it  ETA 1m30s\nstep 2/2  90.00 s/it  in 3m00s\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := run(c.tty, c.total, c.every); got != c.want {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

func TestQuietAndNil(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "x", 3, Options{Quiet: true})
	if b != nil {
		t.Fatal("quiet bar is not nil")
	}
	b.Step(1) // a nil bar must be usable
	b.Done()
	if New(&buf, "x", 0, Options{}) != nil {
		t.Error("a bar for zero steps")
	}
	if buf.Len() != 0 {
		t.Errorf("output %q", buf.String())
	}
}

// An interrupted in-place bar still ends its line, once.
func TestDoneMidway(t *testing.T) {
	var buf bytes.Buffer
	tty := true
	c := &clock{time.Unix(0, 0)}
	b := New(&buf, "gen", 10, Options{Terminal: &tty, Now: c.now})
	c.t = c.t.Add(time.Second)
	b.Step(1)
	b.Done()
	b.Done()
	b.Step(2)
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") || strings.Contains(got, "2/10") {
		t.Errorf("output %q", got)
	}
	if s := dur(2*time.Hour + 3*time.Minute); s != "2h03m" {
		t.Errorf("dur: %s", s)
	}
}
