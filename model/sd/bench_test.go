package sd

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/weights"
	"github.com/neti-project/neti/vk"
)

// benchDevice opens a device without validation (it would distort the
// timings); nil when there is none.
func benchDevice(b *testing.B) *vk.Device {
	b.Helper()
	dev, err := vk.NewDevice(vk.Options{})
	if err != nil {
		b.Skip("no Vulkan device:", err)
	}
	b.Cleanup(func() { dev.Close() })
	return dev
}

// benchUNet times one CFG step: a batch-2 UNet run with its input upload
// and output read-back, as the pipeline does it.
func benchUNet(b *testing.B, dev *vk.Device, m *Model, latent int) {
	o := UNetOptions{Batch: 2, Height: latent, Width: latent}
	u, err := m.CompileUNet(dev, o)
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	sample := make([]float32, 2*m.UNet.InChannels*latent*latent)
	for i := range sample {
		sample[i] = float32(i%17)/8 - 1
	}
	if err := u.SetContext(make([]float32, 2*m.SeqLen()*m.UNet.CrossAttentionDim)); err != nil {
		b.Fatal(err)
	}
	if _, err := u.Predict(sample, []float32{500, 500}); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := u.Predict(sample, []float32{500, 500}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := u.Stats()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
	b.ReportMetric(float64(st.Dispatches), "dispatches")
	b.ReportMetric(float64(st.PeakBytes())/(1<<20), "MiB-planned")
	if ops, err := u.Profile(); err == nil {
		var total time.Duration
		for _, o := range ops {
			total += o.Time
		}
		b.ReportMetric(float64(total.Microseconds())/1000, "gpu-ms/step")
		for i, o := range ops {
			if i < 8 || os.Getenv("NETI_PROFILE_DETAIL") == "1" && i < 40 {
				b.Logf("%-22s %4d x  %8.2f ms  %4.1f%%", o.Op, o.Count, float64(o.Time.Microseconds())/1000, 100*float64(o.Time)/float64(total))
			}
		}
	}
}

// BenchmarkUNetStep: sd-tiny's UNet at its 16x16 latent, and (with
// NETI_BENCH_SD15=1, which `make bench` sets) SD 1.5's at 512x512 with
// random weights written by WriteRandom (about 2 GB; NETI_BENCH_SD15_DIR
// reuses a folder made by `neti model init`), with fp16 and fp32 weights.
// SD 1.5 is skipped where its plan does not fit the device (lavapipe: 1.8
// GiB with fp16 weights against a 1.5 GiB budget).
func BenchmarkUNetStep(b *testing.B) {
	b.Run("sd-tiny-128", func(b *testing.B) {
		dev := benchDevice(b)
		for _, pr := range precisions {
			b.Run(pr.name, func(b *testing.B) {
				m := fixtureModel(b, "sd-tiny")
				m.Weights, m.Activations, m.Profile = pr.weights, pr.activations, true
				benchUNet(b, dev, m, 16)
			})
		}
	})
	b.Run("sd15-512", func(b *testing.B) {
		dir := os.Getenv("NETI_BENCH_SD15_DIR")
		if dir == "" && os.Getenv("NETI_BENCH_SD15") != "1" {
			b.Skip("set NETI_BENCH_SD15=1 (writes 2 GB of random weights) or NETI_BENCH_SD15_DIR=<neti model init folder>")
		}
		dev := benchDevice(b)
		plan, err := sd15Plan()
		if err != nil {
			b.Fatal(err)
		}
		lim := DeviceLimits(dev.Info())
		unet, err := plan.PlanUNet(UNetOptions{Batch: 2, Height: 64, Width: 64}, lim)
		if err != nil {
			b.Skipf("SD 1.5 UNet does not fit %s: %v", dev.Info().Name, err)
		}
		if lim.Budget > 0 && unet.PeakBytes() > lim.Budget {
			b.Skipf("SD 1.5 UNet plans %s, more than %s's budget %s", MiB(unet.PeakBytes()), dev.Info().Name, MiB(lim.Budget))
		}
		if dir == "" {
			dir = filepath.Join(b.TempDir(), "sd15")
			if err := WriteRandom(dir, weights.SD15Configs(), 0); err != nil {
				b.Fatal(err)
			}
		}
		// fp16 weights and activations (the default where the device has
		// 16-bit storage), fp16 weights with fp32 activations, and fp32,
		// with a per-op GPU profile in the log.
		for _, pr := range precisions {
			b.Run(pr.name, func(b *testing.B) {
				m, err := Open(dir, Options{Weights: pr.weights})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				m.Activations = pr.activations
				m.Profile = true
				benchUNet(b, dev, m, 64)
			})
		}
	})
}

func sd15Plan() (*Model, error) { return FromConfigs("sd15", weights.SD15Configs()) }

// precisions are the storage choices the SD 1.5 benchmarks compare.
var precisions = []struct{ name, weights, activations string }{
	{"f16", graph.WeightsF16, graph.ActivationsF16},
	{"f16w", graph.WeightsF16, graph.ActivationsF32},
	{"f32", graph.WeightsF32, ""},
}

// BenchmarkPlan512 reports the planned peak device memory of a 512x512 SD
// 1.5 generation with CFG (text encoder, batch-2 UNet and VAE decoder
// resident together), with fp16 weights and activations (the default where
// the device has 16-bit storage), fp16 weights only, and all fp32, under the device's limits where
// there is a device (the decoder tiles where a whole decode does not fit),
// else unlimited. It needs no weights. The goal is 3 GB.
func BenchmarkPlan512(b *testing.B) {
	lim := Limits{}
	if dev, err := vk.NewDevice(vk.Options{}); err == nil {
		lim = DeviceLimits(dev.Info())
		lim.Budget = 0 // report the need, whatever the device has
		dev.Close()
	}
	for _, pr := range precisions {
		b.Run(pr.name, func(b *testing.B) {
			m, err := sd15Plan()
			if err != nil {
				b.Fatal(err)
			}
			m.Weights, m.Activations = pr.weights, pr.activations
			lim := lim
			lim.F16 = true // plan fp16 as a device with 16-bit storage runs it
			var text, unet, dec int64
			var tiled Tiling
			for i := 0; i < b.N; i++ {
				// The text encoder's 49408x768 table exceeds small bindings
				// in fp32; plan it without the binding limit to report its size.
				t, err := m.PlanTextEncoder(TextEncoderOptions{Batch: 2}, Limits{Limits: graph.Limits{F16: true}})
				if err != nil {
					b.Fatal(err)
				}
				u, err := m.PlanUNet(UNetOptions{Batch: 2, Height: 64, Width: 64}, lim)
				if err != nil {
					b.Fatal(err)
				}
				d, tl, err := m.PlanDecoder(64, 64, DecoderOptions{}, lim)
				if err != nil {
					b.Fatal(err)
				}
				text, unet, dec, tiled = t.PeakBytes(), u.PeakBytes(), d.PeakBytes(), tl
			}
			b.ReportMetric(float64(text+unet+dec)/(1<<20), "MiB-peak")
			b.ReportMetric(float64(text)/(1<<20), "MiB-text")
			b.ReportMetric(float64(unet)/(1<<20), "MiB-unet")
			b.ReportMetric(float64(dec)/(1<<20), "MiB-vae")
			if tiled.Tiled {
				b.ReportMetric(float64(tiled.H), "vae-tile")
			}
		})
	}
}
