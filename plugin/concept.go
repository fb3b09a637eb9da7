// Package plugin defines the neti concept file: what a trained (or imported)
// concept holds, how it is encoded on disk, and a plain-Go evaluation of the
// NeTI mapper used to check files and to test the engine against.
//
// The package depends only on the standard library and msgpack, and every
// field is a plain Go type, so the file format can outlive the engine.
//
// # File layout
//
//	offset size
//	0      8    magic "\x89NETI\r\n\x1a" (the high byte and CR LF catch 7-bit and
//	            text-mode transfers, as PNG's signature does)
//	8      2    format major version, little-endian
//	10     2    format minor version
//	12     4    flags: 1 = payload DEFLATEd, 2 = compact (lossy) tensors
//	16     8    stored payload length
//	24     8    payload length after inflation (= stored when not DEFLATEd)
//	32     32   SHA-256 of bytes 0..31 and the stored payload
//	64     -    payload: one msgpack map (wire.go)
//
// The version sits in the fixed header so a reader can refuse a newer major
// version before it tries to understand the payload. Inside the payload,
// unknown map keys are ignored, which lets minor versions add fields.
package plugin

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// FormatName is the format field of every concept file.
const FormatName = "neti-concept"

// The format version this build writes and reads. A file with a larger major
// version is refused; a larger minor version is read, ignoring what it added.
const (
	VersionMajor = 1
	VersionMinor = 0
)

// Version is a format version.
type Version struct {
	Major, Minor int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Kind says what a concept contains.
type Kind string

const (
	// KindNeTI is a NeTI mapper concept: an MLP of (timestep, layer).
	KindNeTI Kind = "neti"
	// KindEmbedding is a static textual-inversion concept: N vectors of the
	// text width that replace the trigger token in the prompt.
	KindEmbedding Kind = "embedding"
)

// Defaults of the official NeTI code (neti.md §1).
const (
	DefaultBypassAlpha = 0.2
	DefaultSigmaT      = 0.03
	DefaultSigmaL      = 2.0
	DefaultNumW        = 1024
	DefaultAnchors     = 10
	DefaultLayers      = 16
	DefaultHidden      = 128
	DefaultLNEps       = 1e-5
	DefaultLeakySlope  = 0.01
)

// Concept is everything a concept file holds.
type Concept struct {
	// Format and Version are filled by Decode from the file; Encode always
	// writes FormatName and the version of this build.
	Format  string
	Version Version
	Kind    Kind

	// Token is the trigger written in prompts, e.g. "<cat>". SuperCategory is
	// the single-token class word whose embedding norm gave NormScale.
	Token         string
	SuperCategory string

	// NormScale is the L2 norm the whole mapper output is rescaled to; 0
	// means the output is not normalised (NeTI's target_norm = null).
	NormScale float64
	// BypassAlpha scales the textual bypass relative to the hidden state's
	// norm (0.2, a constant in NeTI's text encoder).
	BypassAlpha float64

	Fourier Fourier
	Arch    Arch

	// Weights holds the mapper of a KindNeTI concept.
	Weights *MapperWeights
	// Embedding holds the [N, TextWidth] vectors of a KindEmbedding concept.
	Embedding *Tensor

	Base     BaseModel
	Training Training
	// Optimizer is the AdamW state to resume training; it is written only
	// in full-precision files.
	Optimizer *OptimizerState

	// Metadata is free-form provenance (e.g. the file a concept was
	// imported from). Readers must not depend on any key.
	Metadata map[string]string

	// Compact is set by Decode when the file stored its tensors in the lossy
	// compact form (see EncodeOptions).
	Compact bool
}

// Fourier is the random Fourier positional encoding of (t, layer).
type Fourier struct {
	SigmaT, SigmaL float64
	NumW           int
	// W is [NumW, 2], row-major, with its columns already multiplied by
	// SigmaT and SigmaL. It is random per training run, so it is part of the
	// concept.
	W []float32
}

// Arch holds the mapper's architecture numbers.
type Arch struct {
	TextWidth    int // D: width of a token embedding
	Anchors      int // time anchors of the input layer initialisation
	Layers       int // cross-attention layers (the layer input is 0..Layers-1)
	InputWidth   int // Anchors*Layers: width of the input layer's output
	Hidden       int // width of the two hidden layers
	LNEps        float64
	LeakySlope   float64
	OutputBypass bool // output is [token, bypass] (2D wide) instead of D
}

// OutputWidth is the width of the mapper's output layer.
func (a Arch) OutputWidth() int {
	if a.OutputBypass {
		return 2 * a.TextWidth
	}
	return a.TextWidth
}

// DefaultArch is NeTI's architecture for a text encoder of width d.
func DefaultArch(d int) Arch {
	return Arch{
		TextWidth: d, Anchors: DefaultAnchors, Layers: DefaultLayers,
		InputWidth: DefaultAnchors * DefaultLayers, Hidden: DefaultHidden,
		LNEps: DefaultLNEps, LeakySlope: DefaultLeakySlope, OutputBypass: true,
	}
}

// BaseModel identifies the text encoder a concept was trained for.
type BaseModel struct {
	TextWidth  int
	TextLayers int
	VocabSize  int
	// Hash is computed by the model code; it tells SD 1.x from 2.x text
	// encoders. The plugin treats it as opaque.
	Hash string
}

// Training records how a concept was made. Zero values mean unknown.
type Training struct {
	Steps             int
	BatchSize         int
	GradAccum         int
	LearningRate      float64
	NestedDropoutProb float64
	NumImages         int
	Seed              int64
	Date              string // RFC 3339
	Tool              string // program and version that wrote the concept
}

// OptimizerState is AdamW's state, keyed by tensor name (TensorNames).
type OptimizerState struct {
	Step int
	M, V map[string][]float32
}

// Tensor is a dense float32 tensor in row-major order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Numel is the product of the shape (1 for a scalar).
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// MapperWeights are the 12 trained tensors of a NeTI mapper, named as in
// NeTI's state_dict (net.3 and net.6 are parameter-free LeakyReLUs).
type MapperWeights struct {
	InputW, InputB Tensor // input_layer: [InputWidth, 2*NumW], [InputWidth]
	Lin1W, Lin1B   Tensor // net.1: [Hidden, InputWidth], [Hidden]
	LN1W, LN1B     Tensor // net.2 (LayerNorm): [Hidden], [Hidden]
	Lin2W, Lin2B   Tensor // net.4: [Hidden, Hidden], [Hidden]
	LN2W, LN2B     Tensor // net.5 (LayerNorm): [Hidden], [Hidden]
	OutW, OutB     Tensor // output_layer.0: [OutputWidth, Hidden], [OutputWidth]
}

// TensorNames lists the mapper tensors in file order.
var TensorNames = []string{
	"input_layer.weight", "input_layer.bias",
	"net.1.weight", "net.1.bias",
	"net.2.weight", "net.2.bias",
	"net.4.weight", "net.4.bias",
	"net.5.weight", "net.5.bias",
	"output_layer.0.weight", "output_layer.0.bias",
}

// NamedTensor pairs a tensor with its NeTI state_dict name.
type NamedTensor struct {
	Name   string
	Tensor *Tensor
}

// Named returns the 12 tensors in TensorNames order, pointing into w.
func (w *MapperWeights) Named() []NamedTensor {
	ts := []*Tensor{&w.InputW, &w.InputB, &w.Lin1W, &w.Lin1B, &w.LN1W, &w.LN1B,
		&w.Lin2W, &w.Lin2B, &w.LN2W, &w.LN2B, &w.OutW, &w.OutB}
	out := make([]NamedTensor, len(ts))
	for i, t := range ts {
		out[i] = NamedTensor{TensorNames[i], t}
	}
	return out
}

// Get returns the tensor with a NeTI state_dict name, or nil.
func (w *MapperWeights) Get(name string) *Tensor {
	for _, nt := range w.Named() {
		if nt.Name == name {
			return nt.Tensor
		}
	}
	return nil
}

// expectedShapes gives each mapper tensor's shape for an architecture.
func expectedShapes(a Arch, numW int) map[string][]int {
	o := a.OutputWidth()
	return map[string][]int{
		"input_layer.weight": {a.InputWidth, 2 * numW}, "input_layer.bias": {a.InputWidth},
		"net.1.weight": {a.Hidden, a.InputWidth}, "net.1.bias": {a.Hidden},
		"net.2.weight": {a.Hidden}, "net.2.bias": {a.Hidden},
		"net.4.weight": {a.Hidden, a.Hidden}, "net.4.bias": {a.Hidden},
		"net.5.weight": {a.Hidden}, "net.5.bias": {a.Hidden},
		"output_layer.0.weight": {o, a.Hidden}, "output_layer.0.bias": {o},
	}
}

// ErrInvalid marks a concept whose contents are inconsistent (Validate).
var ErrInvalid = errors.New("invalid concept")

// Limits that keep a hostile file from asking for absurd work or memory;
// real concepts are far below them.
const (
	maxTextWidth = 1 << 14
	maxNumW      = 1 << 14
	maxHidden    = 1 << 12
	maxAnchors   = 1000
	maxLayers    = 256
	maxVectors   = 1 << 10
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks that the concept is usable: known kind, a trigger token,
// tensor shapes consistent with the architecture, finite values.
func (c *Concept) Validate() error {
	if strings.TrimSpace(c.Token) == "" {
		return invalid("empty trigger token")
	}
	if !finite(c.NormScale) || c.NormScale < 0 {
		return invalid("norm scale %v must be finite and >= 0", c.NormScale)
	}
	if c.Arch.TextWidth <= 0 || c.Arch.TextWidth > maxTextWidth {
		return invalid("text width %d out of range 1..%d", c.Arch.TextWidth, maxTextWidth)
	}
	if c.Base.TextWidth != 0 && c.Base.TextWidth != c.Arch.TextWidth {
		return invalid("base model text width %d differs from the concept's %d", c.Base.TextWidth, c.Arch.TextWidth)
	}
	switch c.Kind {
	case KindNeTI:
		return c.validateNeTI()
	case KindEmbedding:
		return c.validateEmbedding()
	case "":
		return invalid("missing kind")
	default:
		return invalid("unknown kind %q (this build knows %q and %q)", c.Kind, KindNeTI, KindEmbedding)
	}
}

func (c *Concept) validateEmbedding() error {
	e := c.Embedding
	if e == nil {
		return invalid("embedding concept %s has no vectors", c.Token)
	}
	if c.Weights != nil {
		return invalid("embedding concept %s also carries mapper weights", c.Token)
	}
	if len(e.Shape) != 2 || e.Shape[0] < 1 || e.Shape[0] > maxVectors || e.Shape[1] != c.Arch.TextWidth {
		return invalid("embedding shape %v, want [N, %d] with 1 <= N <= %d", e.Shape, c.Arch.TextWidth, maxVectors)
	}
	if len(e.Data) != e.Shape[0]*e.Shape[1] {
		return invalid("embedding has %d values for shape %v", len(e.Data), e.Shape)
	}
	if i := firstNonFinite(e.Data); i >= 0 {
		return invalid("embedding value %d is %v", i, e.Data[i])
	}
	return nil
}

func (c *Concept) validateNeTI() error {
	if err := c.checkStructure(); err != nil {
		return err
	}
	a := c.Arch
	if !finite(a.LNEps) || a.LNEps <= 0 {
		return invalid("LayerNorm eps %v must be > 0", a.LNEps)
	}
	if !finite(a.LeakySlope) {
		return invalid("LeakyReLU slope %v is not finite", a.LeakySlope)
	}
	if !finite(c.BypassAlpha) || c.BypassAlpha < 0 {
		return invalid("bypass alpha %v must be finite and >= 0", c.BypassAlpha)
	}
	if !finite(c.Fourier.SigmaT) || !finite(c.Fourier.SigmaL) {
		return invalid("Fourier sigmas (%v, %v) are not finite", c.Fourier.SigmaT, c.Fourier.SigmaL)
	}
	if i := firstNonFinite(c.Fourier.W); i >= 0 {
		return invalid("Fourier matrix value %d is %v", i, c.Fourier.W[i])
	}
	for _, nt := range c.Weights.Named() {
		if i := firstNonFinite(nt.Tensor.Data); i >= 0 {
			return invalid("tensor %s: value %d is %v", nt.Name, i, nt.Tensor.Data[i])
		}
	}
	if o := c.Optimizer; o != nil {
		if o.Step < 0 {
			return invalid("optimizer step %d < 0", o.Step)
		}
		for _, nt := range c.Weights.Named() {
			for _, st := range []struct {
				name string
				m    map[string][]float32
			}{{"m", o.M}, {"v", o.V}} {
				v, ok := st.m[nt.Name]
				if !ok {
					return invalid("optimizer state has no %s for %s", st.name, nt.Name)
				}
				if len(v) != len(nt.Tensor.Data) {
					return invalid("optimizer %s for %s has %d values, the tensor %d", st.name, nt.Name, len(v), len(nt.Tensor.Data))
				}
			}
		}
		for _, m := range []map[string][]float32{o.M, o.V} {
			for name := range m {
				if c.Weights.Get(name) == nil {
					return invalid("optimizer state for unknown tensor %q", name)
				}
			}
		}
	}
	return nil
}

// checkStructure checks sizes and shapes only (no pass over the values), so
// the mapper can call it cheaply before indexing.
func (c *Concept) checkStructure() error {
	a := c.Arch
	if c.Kind != KindNeTI {
		return invalid("kind %q is not a mapper concept", c.Kind)
	}
	if c.Weights == nil {
		return invalid("mapper concept %s has no weights", c.Token)
	}
	if c.Embedding != nil {
		return invalid("mapper concept %s also carries embedding vectors", c.Token)
	}
	if a.TextWidth <= 0 || a.TextWidth > maxTextWidth {
		return invalid("text width %d out of range 1..%d", a.TextWidth, maxTextWidth)
	}
	if a.Anchors < 1 || a.Anchors > maxAnchors || a.Layers < 1 || a.Layers > maxLayers {
		return invalid("anchors %d / layers %d out of range", a.Anchors, a.Layers)
	}
	if a.InputWidth != a.Anchors*a.Layers {
		return invalid("input width %d != anchors %d x layers %d", a.InputWidth, a.Anchors, a.Layers)
	}
	if a.Hidden < 1 || a.Hidden > maxHidden {
		return invalid("hidden width %d out of range 1..%d", a.Hidden, maxHidden)
	}
	f := c.Fourier
	if f.NumW < 1 || f.NumW > maxNumW {
		return invalid("Fourier feature count %d out of range 1..%d", f.NumW, maxNumW)
	}
	if len(f.W) != 2*f.NumW {
		return invalid("Fourier matrix has %d values, want %d x 2", len(f.W), f.NumW)
	}
	want := expectedShapes(a, f.NumW)
	for _, nt := range c.Weights.Named() {
		ws := want[nt.Name]
		if !equalShape(nt.Tensor.Shape, ws) {
			return invalid("tensor %s has shape %v, the architecture needs %v", nt.Name, nt.Tensor.Shape, ws)
		}
		if len(nt.Tensor.Data) != nt.Tensor.Numel() {
			return invalid("tensor %s has %d values for shape %v", nt.Name, len(nt.Tensor.Data), nt.Tensor.Shape)
		}
	}
	return nil
}

// ParamCount is the number of trained values (mapper weights or embedding
// vectors).
func (c *Concept) ParamCount() int {
	n := 0
	if c.Weights != nil {
		for _, nt := range c.Weights.Named() {
			n += len(nt.Tensor.Data)
		}
	}
	if c.Embedding != nil {
		n += len(c.Embedding.Data)
	}
	return n
}

// TensorCount is the number of stored trained tensors.
func (c *Concept) TensorCount() int {
	n := 0
	if c.Weights != nil {
		n += len(TensorNames)
	}
	if c.Embedding != nil {
		n++
	}
	return n
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}
