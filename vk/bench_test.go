package vk

import (
	"testing"
	"time"
)

// benchDevice opens a device without validation (which triples recording
// cost) for the benchmarks.
func benchDevice(b *testing.B, opts Options) *Device {
	b.Helper()
	if shared == nil {
		b.Skipf("no Vulkan device: %v", sharedErr)
	}
	opts.PipelineCacheDir = "-"
	d, err := NewDevice(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := d.Close(); err != nil {
			b.Error(err)
		}
	})
	return d
}

// BenchmarkDispatch measures recording and running tiny dependent
// dispatches: the fixed cost per op the graph executor pays.
func BenchmarkDispatch(b *testing.B) {
	d := benchDevice(b, Options{})
	k, err := d.NewKernel(incSpec(1))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	buf, err := d.NewBuffer(256)
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	const per = 1000
	push := u32bytes(64, 1)
	var record, run time.Duration
	for i := 0; i < b.N; i++ {
		r, err := d.NewRecording()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for j := 0; j < per; j++ {
			if err := r.Dispatch(k, []Binding{{Buf: buf}}, push, 1, 1, 1); err != nil {
				b.Fatal(err)
			}
			r.Barrier()
		}
		if err := r.End(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		run += time.Since(t1)
		record += t1.Sub(t0)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(record.Microseconds())/float64(b.N*per), "us-record/dispatch")
	b.ReportMetric(float64(run.Microseconds())/float64(b.N*per), "us-run/dispatch")
}

// BenchmarkTransfer measures Write+Read bandwidth, mapped and staged.
func BenchmarkTransfer(b *testing.B) {
	for _, staged := range []bool{false, true} {
		name := "mapped"
		if staged {
			name = "staged"
		}
		b.Run(name, func(b *testing.B) {
			d := benchDevice(b, Options{ForceStaging: staged})
			const size = 32 << 20
			buf, err := d.NewBuffer(size)
			if err != nil {
				b.Fatal(err)
			}
			defer buf.Close()
			data := make([]byte, size)
			b.SetBytes(2 * size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := buf.Write(0, data); err != nil {
					b.Fatal(err)
				}
				if err := buf.Read(0, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
