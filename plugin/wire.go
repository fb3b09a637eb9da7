package plugin

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// The payload is one msgpack map, wireConcept. Keys are strings so that a
// newer minor version can add keys that older readers skip. Tensors are raw
// little-endian bytes rather than msgpack arrays: a 2 MB mapper then costs
// no per-element overhead, and decoding is a copy.

type wireConcept struct {
	Format        string            `msgpack:"format"`
	Kind          string            `msgpack:"kind"`
	Token         string            `msgpack:"token"`
	SuperCategory string            `msgpack:"super_category"`
	NormScale     float64           `msgpack:"norm_scale"`
	BypassAlpha   float64           `msgpack:"bypass_alpha"`
	Fourier       wireFourier       `msgpack:"fourier"`
	Arch          wireArch          `msgpack:"arch"`
	Tensors       []wireTensor      `msgpack:"tensors"`
	Base          wireBase          `msgpack:"base_model"`
	Training      wireTraining      `msgpack:"training"`
	Optimizer     *wireOptimizer    `msgpack:"optimizer,omitempty"`
	Metadata      map[string]string `msgpack:"metadata,omitempty"`
}

type wireFourier struct {
	SigmaT float64 `msgpack:"sigma_t"`
	SigmaL float64 `msgpack:"sigma_l"`
	NumW   int     `msgpack:"num_w"`
}

type wireArch struct {
	TextWidth    int     `msgpack:"text_width"`
	Anchors      int     `msgpack:"anchors"`
	Layers       int     `msgpack:"layers"`
	InputWidth   int     `msgpack:"input_width"`
	Hidden       int     `msgpack:"hidden"`
	LNEps        float64 `msgpack:"ln_eps"`
	LeakySlope   float64 `msgpack:"leaky_slope"`
	OutputBypass bool    `msgpack:"output_bypass"`
}

type wireBase struct {
	TextWidth  int    `msgpack:"text_width"`
	TextLayers int    `msgpack:"text_layers"`
	VocabSize  int    `msgpack:"vocab_size"`
	Hash       string `msgpack:"hash"`
}

type wireTraining struct {
	Steps             int     `msgpack:"steps"`
	BatchSize         int     `msgpack:"batch_size"`
	GradAccum         int     `msgpack:"grad_accum"`
	LearningRate      float64 `msgpack:"learning_rate"`
	NestedDropoutProb float64 `msgpack:"nested_dropout_prob"`
	NumImages         int     `msgpack:"num_images"`
	Seed              int64   `msgpack:"seed"`
	Date              string  `msgpack:"date"`
	Tool              string  `msgpack:"tool"`
}

type wireOptimizer struct {
	Step int          `msgpack:"step"`
	M    []wireTensor `msgpack:"m"`
	V    []wireTensor `msgpack:"v"`
}

// Tensor encodings.
const (
	encF32 = "f32" // raw little-endian float32
	// encQ16 is row quantisation (quant.go): Steps holds one float32 step
	// per row, Data the zigzag codes as a low-byte plane then a high-byte
	// plane; Base "anchor" adds AnchorInit of the concept's Fourier matrix.
	encQ16 = "q16"
)

const baseAnchor = "anchor"

type wireTensor struct {
	Name  string `msgpack:"name"`
	Shape []int  `msgpack:"shape"`
	Enc   string `msgpack:"enc"`
	Base  string `msgpack:"base,omitempty"`
	Steps []byte `msgpack:"steps,omitempty"`
	Data  []byte `msgpack:"data"`
}

// Names of the non-mapper tensors in the payload.
const (
	tensorFourierW  = "fourier.w"
	tensorEmbedding = "embedding"
)

// maxTensorElems bounds one tensor; the largest real one (SD 2.x input
// layer) has 327,680 values.
const maxTensorElems = 1 << 26

func f32Tensor(name string, t *Tensor) wireTensor {
	return wireTensor{Name: name, Shape: append([]int(nil), t.Shape...), Enc: encF32, Data: float32Bytes(t.Data)}
}

func toWire(c *Concept) *wireConcept {
	w := &wireConcept{
		Format: FormatName, Kind: string(c.Kind), Token: c.Token, SuperCategory: c.SuperCategory,
		NormScale: c.NormScale, BypassAlpha: c.BypassAlpha,
		Fourier: wireFourier{SigmaT: c.Fourier.SigmaT, SigmaL: c.Fourier.SigmaL, NumW: c.Fourier.NumW},
		Arch: wireArch{
			TextWidth: c.Arch.TextWidth, Anchors: c.Arch.Anchors, Layers: c.Arch.Layers,
			InputWidth: c.Arch.InputWidth, Hidden: c.Arch.Hidden, LNEps: c.Arch.LNEps,
			LeakySlope: c.Arch.LeakySlope, OutputBypass: c.Arch.OutputBypass,
		},
		Base: wireBase{TextWidth: c.Base.TextWidth, TextLayers: c.Base.TextLayers, VocabSize: c.Base.VocabSize, Hash: c.Base.Hash},
		Training: wireTraining{
			Steps: c.Training.Steps, BatchSize: c.Training.BatchSize, GradAccum: c.Training.GradAccum,
			LearningRate: c.Training.LearningRate, NestedDropoutProb: c.Training.NestedDropoutProb,
			NumImages: c.Training.NumImages, Seed: c.Training.Seed, Date: c.Training.Date, Tool: c.Training.Tool,
		},
		Metadata: c.Metadata,
	}
	if c.Fourier.W != nil {
		w.Tensors = append(w.Tensors, f32Tensor(tensorFourierW, &Tensor{Shape: []int{c.Fourier.NumW, 2}, Data: c.Fourier.W}))
	}
	if c.Weights != nil {
		for _, nt := range c.Weights.Named() {
			w.Tensors = append(w.Tensors, f32Tensor(nt.Name, nt.Tensor))
		}
	}
	if c.Embedding != nil {
		w.Tensors = append(w.Tensors, f32Tensor(tensorEmbedding, c.Embedding))
	}
	if o := c.Optimizer; o != nil && c.Weights != nil {
		wo := &wireOptimizer{Step: o.Step}
		for _, nt := range c.Weights.Named() {
			wo.M = append(wo.M, f32Tensor(nt.Name, &Tensor{Shape: nt.Tensor.Shape, Data: o.M[nt.Name]}))
			wo.V = append(wo.V, f32Tensor(nt.Name, &Tensor{Shape: nt.Tensor.Shape, Data: o.V[nt.Name]}))
		}
		w.Optimizer = wo
	}
	return w
}

func fromWire(w *wireConcept) (*Concept, error) {
	if w.Format != FormatName {
		return nil, fmt.Errorf("payload format is %q, not %q", w.Format, FormatName)
	}
	c := &Concept{
		Format: w.Format, Kind: Kind(w.Kind), Token: w.Token, SuperCategory: w.SuperCategory,
		NormScale: w.NormScale, BypassAlpha: w.BypassAlpha,
		Fourier: Fourier{SigmaT: w.Fourier.SigmaT, SigmaL: w.Fourier.SigmaL, NumW: w.Fourier.NumW},
		Arch: Arch{
			TextWidth: w.Arch.TextWidth, Anchors: w.Arch.Anchors, Layers: w.Arch.Layers,
			InputWidth: w.Arch.InputWidth, Hidden: w.Arch.Hidden, LNEps: w.Arch.LNEps,
			LeakySlope: w.Arch.LeakySlope, OutputBypass: w.Arch.OutputBypass,
		},
		Base: BaseModel{TextWidth: w.Base.TextWidth, TextLayers: w.Base.TextLayers, VocabSize: w.Base.VocabSize, Hash: w.Base.Hash},
		Training: Training{
			Steps: w.Training.Steps, BatchSize: w.Training.BatchSize, GradAccum: w.Training.GradAccum,
			LearningRate: w.Training.LearningRate, NestedDropoutProb: w.Training.NestedDropoutProb,
			NumImages: w.Training.NumImages, Seed: w.Training.Seed, Date: w.Training.Date, Tool: w.Training.Tool,
		},
		Metadata: w.Metadata,
	}
	byName := map[string]*wireTensor{}
	for i := range w.Tensors {
		t := &w.Tensors[i]
		if byName[t.Name] != nil {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		byName[t.Name] = t
	}
	// W first: an anchor-based tensor needs it.
	if t := byName[tensorFourierW]; t != nil {
		ft, err := decodeTensor(t, nil)
		if err != nil {
			return nil, err
		}
		if len(ft.Shape) != 2 || ft.Shape[1] != 2 || ft.Shape[0] != c.Fourier.NumW {
			return nil, invalid("Fourier matrix has shape %v, want [%d 2]", ft.Shape, c.Fourier.NumW)
		}
		c.Fourier.W = ft.Data
	}
	switch c.Kind {
	case KindNeTI:
		c.Weights = &MapperWeights{}
		// The anchor base is computed once, only if some tensor uses it.
		var anchor []float32
		for _, nt := range c.Weights.Named() {
			t := byName[nt.Name]
			if t == nil {
				return nil, invalid("mapper tensor %s is missing", nt.Name)
			}
			if t.Base == baseAnchor && anchor == nil {
				if err := c.checkStructureForAnchor(t); err != nil {
					return nil, err
				}
				anchor = AnchorInit(c.Fourier.W, c.Fourier.NumW, c.Arch.Anchors, c.Arch.Layers)
			}
			dt, err := decodeTensor(t, anchor)
			if err != nil {
				return nil, err
			}
			*nt.Tensor = *dt
		}
		if w.Optimizer != nil {
			o, err := decodeOptimizer(w.Optimizer)
			if err != nil {
				return nil, err
			}
			c.Optimizer = o
		}
	case KindEmbedding:
		t := byName[tensorEmbedding]
		if t == nil {
			return nil, invalid("embedding concept has no %q tensor", tensorEmbedding)
		}
		dt, err := decodeTensor(t, nil)
		if err != nil {
			return nil, err
		}
		c.Embedding = dt
	}
	return c, nil
}

// checkStructureForAnchor checks, before AnchorInit builds its table, that
// the numbers it depends on agree with each other and with the stored tensor
// t, whose bytes are in the file: a hostile header cannot ask for a table
// larger than the file justifies.
func (c *Concept) checkStructureForAnchor(t *wireTensor) error {
	a := c.Arch
	if c.Fourier.NumW < 1 || c.Fourier.NumW > maxNumW || len(c.Fourier.W) != 2*c.Fourier.NumW {
		return invalid("anchor-based input layer needs a valid Fourier matrix (num_w %d, %d values)", c.Fourier.NumW, len(c.Fourier.W))
	}
	if a.Anchors < 1 || a.Anchors > maxAnchors || a.Layers < 1 || a.Layers > maxLayers || a.InputWidth != a.Anchors*a.Layers {
		return invalid("anchors %d / layers %d / input width %d are inconsistent", a.Anchors, a.Layers, a.InputWidth)
	}
	if !equalShape(t.Shape, []int{a.InputWidth, 2 * c.Fourier.NumW}) || len(t.Data) != 2*a.InputWidth*2*c.Fourier.NumW {
		return invalid("anchor-based tensor %q has shape %v and %d bytes, want [%d %d]", t.Name, t.Shape, len(t.Data), a.InputWidth, 2*c.Fourier.NumW)
	}
	return nil
}

func decodeOptimizer(w *wireOptimizer) (*OptimizerState, error) {
	o := &OptimizerState{Step: w.Step, M: map[string][]float32{}, V: map[string][]float32{}}
	for _, part := range []struct {
		name string
		src  []wireTensor
		dst  map[string][]float32
	}{{"m", w.M, o.M}, {"v", w.V, o.V}} {
		for i := range part.src {
			t, err := decodeTensor(&part.src[i], nil)
			if err != nil {
				return nil, fmt.Errorf("optimizer %s: %w", part.name, err)
			}
			if _, dup := part.dst[part.src[i].Name]; dup {
				return nil, fmt.Errorf("optimizer %s: tensor %q appears twice", part.name, part.src[i].Name)
			}
			part.dst[part.src[i].Name] = t.Data
		}
	}
	return o, nil
}

// decodeTensor turns a wire tensor into float32 values after checking that
// its shape and byte counts agree. anchor is the base for Base "anchor".
func decodeTensor(t *wireTensor, anchor []float32) (*Tensor, error) {
	n := 1
	for _, d := range t.Shape {
		if d < 1 || d > maxTensorElems || n > maxTensorElems/d {
			return nil, invalid("tensor %q: shape %v out of range", t.Name, t.Shape)
		}
		n *= d
	}
	out := &Tensor{Shape: append([]int(nil), t.Shape...)}
	switch t.Enc {
	case encF32:
		if t.Base != "" {
			return nil, fmt.Errorf("tensor %q: base %q is not allowed with %s", t.Name, t.Base, t.Enc)
		}
		if len(t.Data) != 4*n {
			return nil, fmt.Errorf("tensor %q: %d bytes for %d float32 values", t.Name, len(t.Data), n)
		}
		out.Data = bytesFloat32(t.Data)
	case encQ16:
		if len(t.Shape) != 2 {
			return nil, fmt.Errorf("tensor %q: quantised tensor must be a matrix, shape %v", t.Name, t.Shape)
		}
		rows, cols := t.Shape[0], t.Shape[1]
		if len(t.Data) != 2*n || len(t.Steps) != 4*rows {
			return nil, fmt.Errorf("tensor %q: %d code bytes and %d step bytes for shape %v", t.Name, len(t.Data), len(t.Steps), t.Shape)
		}
		var base []float32
		switch t.Base {
		case "":
		case baseAnchor:
			if len(anchor) != n {
				return nil, invalid("tensor %q: anchor base has %d values, tensor %d", t.Name, len(anchor), n)
			}
			base = anchor
		default:
			return nil, fmt.Errorf("tensor %q: unknown base %q", t.Name, t.Base)
		}
		steps := bytesFloat32(t.Steps)
		for r, s := range steps {
			if !(s >= 0) || math.IsInf(float64(s), 0) {
				return nil, invalid("tensor %q: row %d has step %v", t.Name, r, s)
			}
		}
		codes, err := unpackPlanes(t.Data)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		out.Data = dequantizeRows(steps, codes, base, cols)
	default:
		return nil, fmt.Errorf("tensor %q: unknown encoding %q (this build reads %s, %s)", t.Name, t.Enc, encF32, encQ16)
	}
	return out, nil
}

// sniff names what a non-concept file looks like, for the wrong-magic error.
func sniff(b []byte) string {
	switch {
	case len(b) >= 4 && string(b[:4]) == "PK\x03\x04":
		return "a zip archive, as PyTorch checkpoints (.pt, .bin, .ckpt) are; convert it with `neti import`"
	case len(b) >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5:
		return "a Python pickle (legacy PyTorch checkpoint); convert it with `neti import`"
	case len(b) >= 9 && b[8] == '{' && binary.LittleEndian.Uint64(b) < 1<<27:
		return "a safetensors file; convert it with `neti import`"
	case len(b) >= 1 && strings.ContainsRune("{[", rune(b[0])):
		return "a JSON document"
	}
	return "an unknown format"
}
