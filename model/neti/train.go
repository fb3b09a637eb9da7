package neti

import (
	"fmt"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/clip"
	"github.com/neti-project/neti/model/unet"
	"github.com/neti-project/neti/plugin"
)

// StepShape fixes the sizes of a training step graph.
type StepShape struct {
	Batch        int // images per micro-batch
	Seq          int // token positions (77)
	LatentC      int // latent channels
	LatentH      int // latent height
	LatentW      int // latent width
	Layers       int // cross-attention layers (16)
	TextHidden   int // D
	MapperHidden int // 128
}

// Step is a built NeTI training step: the names of its inputs and the
// tensors of interest. One run computes the loss of a micro-batch and its
// gradient with respect to every mapper parameter, accumulates it, and
// (when the "opt" input says so) applies AdamW, all on the device.
//
// Inputs (rows of the text batch are layer-major: row = layer*Batch + b):
//
//	latents, noise  [B, C, H, W]   x0 (VAE sample * scaling factor) and ε
//	sqrt_acp, sqrt_1m_acp [B,1,1,1] of each item's timestep (add_noise)
//	timesteps       [B]            the UNet's t (also the mapper's)
//	map_t, map_l    [L*B]          mapper inputs per text row
//	keep            [L*B, hidden]  nested-dropout keep masks
//	ids             [L*B, seq]     token ids, placeholder replaced by any valid id
//	mask            [L*B, seq, 1]  1 at the placeholder
//	opt             [5]            (apply, lr, 1/(1-β1^t), 1/(1-β2^t), accumulate); apply 0 only
//	                               accumulates; accumulate 0 leaves all state untouched (evaluation)
//	param.<name>, m.<name>, v.<name>, acc.<name>: mapper parameters and AdamW/accumulation state
type Step struct {
	Loss   *graph.Tensor
	Pred   *graph.Tensor
	Grads  map[string]*graph.Tensor // by NeTI tensor name (this micro-batch, before accumulation)
	Params map[string]*graph.Tensor
}

// Optimizer holds AdamW's hyperparameters (NeTI: β 0.9/0.999, ε 1e-8,
// weight decay 0.01).
type Optimizer struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// AccumScale divides each micro-batch's gradient (1/grad-accum steps).
	AccumScale float64
}

// DefaultOptimizer is NeTI's.
func DefaultOptimizer(accum int) Optimizer {
	return Optimizer{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, AccumScale: 1 / float64(max(accum, 1))}
}

// BuildStep adds one training step to b. The text encoder and UNet
// weights are frozen (graph weights); the mapper's parameters are inputs
// updated in place with Assign.
func BuildStep(b *graph.Builder, c *plugin.Concept, tc clip.Config, uc unet.Config, s StepShape, opt Optimizer) (*Step, error) {
	if c.Kind != plugin.KindNeTI || c.Weights == nil {
		return nil, fmt.Errorf("neti: train: concept %s is not a mapper concept", c.Token)
	}
	if c.Arch.TextWidth != tc.Hidden {
		return nil, fmt.Errorf("neti: train: mapper width %d, text encoder width %d", c.Arch.TextWidth, tc.Hidden)
	}
	L, B, D := s.Layers, s.Batch, s.TextHidden
	rows := L * B
	st := &Step{Grads: map[string]*graph.Tensor{}, Params: map[string]*graph.Tensor{}}

	// Mapper with its parameters as inputs.
	params := map[string]*graph.Tensor{}
	var order []*graph.Tensor
	var names []string
	for _, nt := range c.Weights.Named() {
		p := b.Input("param."+nt.Name, nt.Tensor.Shape...)
		params[nt.Name] = p
		order = append(order, p)
		names = append(names, nt.Name)
	}
	st.Params = params
	mt, ml := b.Input("map_t", rows), b.Input("map_l", rows)
	keep := b.Input("keep", rows, c.Arch.Hidden)
	o := mapperWith(b, c, params, b.Const(c.Fourier.W, c.Fourier.NumW, 2), mt, ml, keep)
	tok := b.Slice(o, -1, 0, D)
	byp := b.Slice(o, -1, D, 2*D)

	ids := b.Input("ids", rows, s.Seq)
	mask := b.Input("mask", rows, s.Seq, 1)
	inject := b.Reshape(tok, rows, 1, D)
	bypass := b.Mul(mask, b.Reshape(b.L2Normalize(byp, float32(c.BypassAlpha)), rows, 1, D))
	text := BuildText(b, tc, ids, inject, mask, bypass)
	ctx := unet.Context{}
	for l := 0; l < L; l++ {
		ctx.Keys = append(ctx.Keys, b.Slice(text.Keys, 0, l*B, (l+1)*B))
		ctx.Values = append(ctx.Values, b.Slice(text.Values, 0, l*B, (l+1)*B))
	}

	latents := b.Input("latents", B, s.LatentC, s.LatentH, s.LatentW)
	noise := b.Input("noise", B, s.LatentC, s.LatentH, s.LatentW)
	sa, sb := b.Input("sqrt_acp", B, 1, 1, 1), b.Input("sqrt_1m_acp", B, 1, 1, 1)
	noisy := b.Add(b.Mul(latents, sa), b.Mul(noise, sb))
	pred := unet.Build(b, uc, noisy, b.Input("timesteps", B), ctx, nil)
	diff := b.Sub(pred, noise)
	n := diff.Numel()
	st.Loss = b.Mean(b.Reshape(b.Mul(diff, diff), n), 0)
	st.Pred = pred

	grads := b.Grad(st.Loss, nil, order...)
	optIn := b.Input("opt", 5)
	apply := b.Slice(optIn, 0, 0, 1)
	lr := b.Slice(optIn, 0, 1, 2)
	bc1 := b.Slice(optIn, 0, 2, 3)
	bc2 := b.Slice(optIn, 0, 3, 4)
	accOn := b.Slice(optIn, 0, 4, 5)
	one := b.Const([]float32{1}, 1)
	keepAcc := b.Sub(one, apply) // accumulators restart after an update
	for i, g := range grads {
		name := names[i]
		st.Grads[name] = g
		p := order[i]
		shape := p.Shape()
		acc := b.Input("acc."+name, shape...)
		m := b.Input("m."+name, shape...)
		v := b.Input("v."+name, shape...)
		total := b.Add(acc, b.Mul(accOn, b.Scale(g, float32(opt.AccumScale))))
		// AdamW (decoupled weight decay), applied only when apply = 1:
		// m' = m + apply*(1-β1)(g-m), v' = v + apply*(1-β2)(g²-v),
		// p' = p - apply*lr*(wd*p + m̂'/(sqrt(v̂')+ε)).
		m2 := b.Add(m, b.Mul(apply, b.Scale(b.Sub(total, m), float32(1-opt.Beta1))))
		v2 := b.Add(v, b.Mul(apply, b.Scale(b.Sub(b.Mul(total, total), v), float32(1-opt.Beta2))))
		mh := b.Mul(m2, bc1)
		vh := b.Mul(v2, bc2)
		upd := b.Add(b.Div(mh, b.Add(b.Sqrt(vh), b.Const([]float32{float32(opt.Eps)}, 1))), b.Scale(p, float32(opt.WeightDecay)))
		p2 := b.Sub(p, b.Mul(b.Mul(apply, lr), upd))
		b.Assign(p, p2)
		b.Assign(m, m2)
		b.Assign(v, v2)
		b.Assign(acc, b.Mul(total, keepAcc))
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	return st, nil
}

// mapperWith is BuildMapper over given parameter tensors (inputs while
// training, weights at inference).
func mapperWith(b *graph.Builder, c *plugin.Concept, p map[string]*graph.Tensor, w, t, layer, keep *graph.Tensor) *graph.Tensor {
	a := c.Arch
	lin := func(name string, x *graph.Tensor) *graph.Tensor {
		return b.Linear(x, p[name+".weight"], p[name+".bias"])
	}
	ln := func(name string, x *graph.Tensor) *graph.Tensor {
		return b.LayerNorm(x, p[name+".weight"], p[name+".bias"], float32(a.LNEps))
	}
	h := lin("input_layer", b.Fourier(t, layer, w))
	h = b.LeakyReLU(ln("net.2", lin("net.1", h)), float32(a.LeakySlope))
	h = b.LeakyReLU(ln("net.5", lin("net.4", h)), float32(a.LeakySlope))
	o := lin("output_layer.0", b.Mul(h, keep))
	if c.NormScale > 0 {
		o = b.L2Normalize(o, float32(c.NormScale))
	}
	return o
}
