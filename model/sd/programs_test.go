package sd

import (
	"fmt"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
)

// fp32 tolerance of single-pass model outputs against the references.
const tol = 1e-4

func ints(v []int64, rows int) [][]int {
	n := len(v) / rows
	out := make([][]int, rows)
	for r := range out {
		out[r] = make([]int, n)
		for i := range out[r] {
			out[r][i] = int(v[r*n+i])
		}
	}
	return out
}

func TestTextEncoderGPU(t *testing.T) {
	dev := device(t)
	m := fixtureModel(t, "sd-tiny")
	c := tinyCase(t, "text_encoder_ids")
	ids, shape, err := c.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	te, err := m.CompileTextEncoder(dev, TextEncoderOptions{Batch: shape[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer te.Close()
	got, err := te.Encode(ints(ids, shape[0]))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "last_hidden_state", got, tensor(t, c, true, "last_hidden_state"), tol)
	pre, err := te.PreLN()
	if err != nil {
		t.Fatal(err)
	}
	hs := tensor(t, c, true, "hidden_states")
	closeTo(t, "pre-LN output", pre, hs[len(hs)-len(pre):], tol)

	if _, err := te.Encode(ints(ids[:77], 1)); err == nil {
		t.Error("a batch of 1 for a batch-3 program was accepted")
	}
	if err := te.SetInject(nil, nil); err == nil {
		t.Error("SetInject accepted by an encoder without Inject")
	}

	// text_encoder_inject: the token embedding at pos replaced by vec.
	ic := tinyCase(t, "text_encoder_inject")
	iids, ishape, err := ic.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	var pos int
	if err := ic.Input("pos", &pos); err != nil {
		t.Fatal(err)
	}
	vec := tensor(t, ic, false, "vec")
	ti, err := m.CompileTextEncoder(dev, TextEncoderOptions{Batch: ishape[0], Inject: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	inject := make([]float32, ishape[0]*77*m.Text.Hidden)
	mask := make([]float32, ishape[0]*77)
	copy(inject[pos*m.Text.Hidden:], vec)
	mask[pos] = 1
	if err := ti.SetInject(inject, mask); err != nil {
		t.Fatal(err)
	}
	got, err = ti.Encode(ints(iids, ishape[0]))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "text_encoder_inject", got, tensor(t, ic, true, "last_hidden_state"), tol)
}

// The UNet programs against diffusers: one context shared by all layers
// (several timesteps, then one per batch item), per-layer contexts, and
// NeTI-style per-layer keys and values.
func TestUNetGPU(t *testing.T) {
	dev := device(t)
	m := fixtureModel(t, "sd-tiny")
	eps := tinyCase(t, "unet_eps")
	sample := tensor(t, eps, false, "sample")
	ctx := tensor(t, eps, false, "encoder_hidden_states")

	u, err := m.CompileUNet(dev, UNetOptions{Batch: 2, Height: 16, Width: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.SetContext(ctx); err != nil {
		t.Fatal(err)
	}
	var ts []float32
	if err := eps.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	want := tensor(t, eps, true, "noise_pred")
	n := len(sample)
	// The two ends of the schedule; 500 is covered by unet_per_layer.
	for _, i := range []int{0, len(ts) - 1} {
		tv := ts[i]
		got, err := u.Predict(sample, []float32{tv, tv})
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, fmt.Sprint("unet_eps t=", tv), got, want[i*n:(i+1)*n], tol)
	}

	bt := tinyCase(t, "unet_batch_timesteps")
	if err := bt.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	got, err := u.Predict(sample, ts)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "unet_batch_timesteps", got, tensor(t, bt, true, "noise_pred"), tol)
	if err := u.SetLayerContexts(nil, nil); err == nil {
		t.Error("SetLayerContexts on a one-context UNet was accepted")
	}

	pl := tinyCase(t, "unet_per_layer")
	var tp float32
	if err := pl.Input("timestep", &tp); err != nil {
		t.Fatal(err)
	}
	all := tensor(t, pl, false, "contexts")
	layers := split(all, 16)
	ul, err := m.CompileUNet(dev, UNetOptions{Batch: 2, Height: 16, Width: 16, Context: LayerContexts})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if err := ul.SetLayerContexts(layers, layers); err == nil {
		t.Error("value contexts accepted by a LayerContexts UNet")
	}
	if err := ul.SetLayerContexts(layers, nil); err != nil {
		t.Fatal(err)
	}
	got, err = ul.Predict(sample, []float32{tp, tp})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "unet_per_layer", got, tensor(t, pl, true, "noise_pred"), tol)

	nu := tinyCase(t, "neti_unet")
	if err := nu.Input("timestep", &tp); err != nil {
		t.Fatal(err)
	}
	u1, err := m.CompileUNet(dev, UNetOptions{Batch: 1, Height: 16, Width: 16, Context: LayerKeysValues})
	if err != nil {
		t.Fatal(err)
	}
	defer u1.Close()
	// Keys and values from different contexts, as NeTI's bypass makes them.
	keys, values := split(tensor(t, nu, true, "context_keys"), 16), split(tensor(t, nu, true, "context_values"), 16)
	if err := u1.SetLayerContexts(keys, values); err != nil {
		t.Fatal(err)
	}
	got, err = u1.Predict(tensor(t, nu, false, "sample"), []float32{tp})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "neti_unet noise_pred", got, tensor(t, nu, true, "noise_pred"), tol)
	if _, err := u1.Predict(sample, []float32{tp}); err == nil {
		t.Error("a batch-2 sample was accepted by a batch-1 UNet")
	}
}

func split(v []float32, n int) [][]float32 {
	out := make([][]float32, n)
	k := len(v) / n
	for i := range out {
		out[i] = v[i*k : (i+1)*k]
	}
	return out
}

func TestVAEGPU(t *testing.T) {
	dev := device(t)
	m := fixtureModel(t, "sd-tiny")
	dc := tinyCase(t, "vae_decode")
	d, err := m.CompileDecoder(dev, 16, 16, DecoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Tiling().Tiled {
		t.Fatalf("a 16x16 latent was tiled: %+v", d.Tiling())
	}
	img, err := d.Decode(tensor(t, dc, false, "z"))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "vae_decode", img, tensor(t, dc, true, "image"), tol)

	ec := tinyCase(t, "vae_encode")
	e, err := m.CompileEncoder(dev, 128, 128)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	post, err := e.Encode(tensor(t, ec, false, "x"))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "mean", post.Mean, tensor(t, ec, true, "mean"), tol)
	closeTo(t, "logvar", post.LogVar, tensor(t, ec, true, "logvar"), tol)
	closeTo(t, "std", post.Std, tensor(t, ec, true, "std"), tol)
	z, err := post.Sample(tensor(t, ec, false, "eps"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range z {
		z[i] *= e.ScalingFactor()
	}
	closeTo(t, "latents_scaled", z, tensor(t, ec, true, "latents_scaled"), tol)
}

// TestF16Storage: with weights and activations stored as float16 (the
// default on devices with 16-bit storage) the text encoder, UNet and VAE
// decoder still match the fp32 references within the fp16 tolerance, and
// their weights and activations take about half the memory.
func TestF16Storage(t *testing.T) {
	dev := device(t)
	if !dev.F16() {
		t.Skipf("%s has no 16-bit storage", dev.Info().Name)
	}
	dir, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{Weights: graph.WeightsF16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Activations = graph.ActivationsF16 // the GPU default, also on a CPU test device
	f32 := fixtureModel(t, "sd-tiny")
	lim := DeviceLimits(dev.Info())
	const tol16 = 1e-2
	halved := func(what string, got graph.Stats, plan func(*Model) (graph.Stats, error)) {
		t.Helper()
		full, err := plan(f32)
		if err != nil {
			t.Fatal(err)
		}
		if r := float64(got.WeightBytes) / float64(full.WeightBytes); r > 0.6 {
			t.Errorf("%s: fp16 weights take %d bytes, %.2f of fp32's %d", what, got.WeightBytes, r, full.WeightBytes)
		}
		act, fullAct := got.ActivationBytes+got.IOBytes, full.ActivationBytes+full.IOBytes
		if r := float64(act) / float64(fullAct); r > 0.6 {
			t.Errorf("%s: fp16 activations take %d bytes, %.2f of fp32's %d", what, act, r, fullAct)
		}
	}

	c := tinyCase(t, "text_encoder_ids")
	ids, shape, err := c.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	te, err := m.CompileTextEncoder(dev, TextEncoderOptions{Batch: shape[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer te.Close()
	got, err := te.Encode(ints(ids, shape[0]))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "fp16 last_hidden_state", got, tensor(t, c, true, "last_hidden_state"), tol16)
	halved("text encoder", te.Stats(), func(m *Model) (graph.Stats, error) {
		return m.PlanTextEncoder(TextEncoderOptions{Batch: shape[0]}, lim)
	})

	eps := tinyCase(t, "unet_eps")
	o := UNetOptions{Batch: 2, Height: 16, Width: 16}
	u, err := m.CompileUNet(dev, o)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.SetContext(tensor(t, eps, false, "encoder_hidden_states")); err != nil {
		t.Fatal(err)
	}
	var ts []float32
	if err := eps.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	sample, want := tensor(t, eps, false, "sample"), tensor(t, eps, true, "noise_pred")
	got, err = u.Predict(sample, []float32{ts[0], ts[0]})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "fp16 unet_eps", got, want[:len(sample)], tol16)
	halved("unet", u.Stats(), func(m *Model) (graph.Stats, error) { return m.PlanUNet(o, lim) })

	dc := tinyCase(t, "vae_decode")
	d, err := m.CompileDecoder(dev, 16, 16, DecoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, err := d.Decode(tensor(t, dc, false, "z"))
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "fp16 vae_decode", img, tensor(t, dc, true, "image"), tol16)
	halved("vae decoder", d.Stats(), func(m *Model) (graph.Stats, error) {
		st, _, err := m.PlanDecoder(16, 16, DecoderOptions{}, lim)
		return st, err
	})
}

// TestGraphOptionsByDevice: fp16 weights bring fp16 activations on GPUs
// but not on CPU devices; an explicit Activations wins; fp32 weights keep
// everything fp32; training programs keep fp32 activations.
func TestGraphOptionsByDevice(t *testing.T) {
	gpu, cpu := graph.Limits{F16: true}, graph.Limits{F16: true, CPU: true}
	for _, c := range []struct {
		weights, act string
		l            graph.Limits
		want         graph.Options
	}{
		{"", "", gpu, graph.Options{Weights: graph.WeightsF16, Activations: graph.ActivationsF16}},
		{"", "", cpu, graph.Options{Weights: graph.WeightsF16, Activations: graph.ActivationsF32}},
		{"", graph.ActivationsF16, cpu, graph.Options{Weights: graph.WeightsF16, Activations: graph.ActivationsF16}},
		{graph.WeightsF32, "", gpu, graph.Options{Weights: graph.WeightsF32, Activations: graph.ActivationsF32}},
	} {
		m := &Model{Weights: c.weights, Activations: c.act}
		if got := m.GraphOptions(c.l); got != c.want {
			t.Errorf("weights %q activations %q CPU %v: %+v, want %+v", c.weights, c.act, c.l.CPU, got, c.want)
		}
		if got := m.TrainingOptions(); got.Activations != graph.ActivationsF32 {
			t.Errorf("training activations %q", got.Activations)
		}
	}
}
