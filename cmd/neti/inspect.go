package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/neti-project/neti/plugin"
)

// inspectReport is what `neti inspect --json` prints: everything in a
// concept file except the tensor values.
type inspectReport struct {
	File          string            `json:"file"`
	Bytes         int64             `json:"bytes"`
	Format        string            `json:"format"`
	Version       string            `json:"version"`
	Compact       bool              `json:"compact"`
	Kind          string            `json:"kind"`
	Token         string            `json:"token"`
	SuperCategory string            `json:"super_category,omitempty"`
	NormScale     float64           `json:"norm_scale"`
	BypassAlpha   float64           `json:"bypass_alpha"`
	Vectors       int               `json:"vectors,omitempty"`
	Arch          *inspectArch      `json:"architecture,omitempty"`
	Fourier       *inspectFourier   `json:"fourier,omitempty"`
	Base          plugin.BaseModel  `json:"base_model"`
	Training      plugin.Training   `json:"training"`
	Tensors       int               `json:"tensors"`
	Params        int               `json:"params"`
	OptimizerStep *int              `json:"optimizer_step,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

type inspectArch struct {
	TextWidth    int     `json:"text_width"`
	Anchors      int     `json:"anchors"`
	Layers       int     `json:"layers"`
	InputWidth   int     `json:"input_width"`
	Hidden       int     `json:"hidden"`
	OutputWidth  int     `json:"output_width"`
	OutputBypass bool    `json:"output_bypass"`
	LNEps        float64 `json:"ln_eps"`
	LeakySlope   float64 `json:"leaky_slope"`
}

type inspectFourier struct {
	NumW   int     `json:"num_w"`
	SigmaT float64 `json:"sigma_t"`
	SigmaL float64 `json:"sigma_l"`
}

// runInspect prints what a concept file holds, so a user can see what a
// shared file is before using it.
func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "[--json] FILE", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give exactly one concept file")
	}
	path := fs.Arg(0)
	c, err := plugin.Read(path)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	r := newInspectReport(path, st.Size(), c)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeInspectText(stdout, r)
}

func newInspectReport(path string, size int64, c *plugin.Concept) *inspectReport {
	r := &inspectReport{
		File: path, Bytes: size, Format: c.Format, Version: c.Version.String(), Compact: c.Compact,
		Kind: string(c.Kind), Token: c.Token, SuperCategory: c.SuperCategory,
		NormScale: c.NormScale, BypassAlpha: c.BypassAlpha, Base: c.Base, Training: c.Training,
		Tensors: c.TensorCount(), Params: c.ParamCount(), Metadata: c.Metadata,
	}
	if c.Kind == plugin.KindNeTI {
		a := c.Arch
		r.Arch = &inspectArch{
			TextWidth: a.TextWidth, Anchors: a.Anchors, Layers: a.Layers, InputWidth: a.InputWidth,
			Hidden: a.Hidden, OutputWidth: a.OutputWidth(), OutputBypass: a.OutputBypass,
			LNEps: a.LNEps, LeakySlope: a.LeakySlope,
		}
		r.Fourier = &inspectFourier{NumW: c.Fourier.NumW, SigmaT: c.Fourier.SigmaT, SigmaL: c.Fourier.SigmaL}
	}
	if c.Embedding != nil {
		r.Vectors = c.Embedding.Shape[0]
	}
	if c.Optimizer != nil {
		step := c.Optimizer.Step
		r.OptimizerStep = &step
	}
	return r
}

func writeInspectText(w io.Writer, r *inspectReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	form := "full precision"
	switch {
	case r.Compact && r.Kind == string(plugin.KindNeTI):
		form = "compact (quantised mapper, for sharing)"
	case r.Compact:
		form = "compact"
	}
	line("file", "%s (%s, %s)", r.File, inspectSize(r.Bytes), form)
	line("format", "%s %s", r.Format, r.Version)
	switch r.Kind {
	case string(plugin.KindNeTI):
		line("kind", "neti (space-time mapper)")
	case string(plugin.KindEmbedding):
		line("kind", "embedding (%d static vector%s)", r.Vectors, inspectPlural(r.Vectors))
	default:
		line("kind", "%s", r.Kind)
	}
	line("token", "%s", r.Token)
	if r.SuperCategory != "" {
		line("super-category", "%s", r.SuperCategory)
	}
	if a := r.Arch; a != nil {
		if r.NormScale > 0 {
			line("norm scale", "%.6g", r.NormScale)
		} else {
			line("norm scale", "none (output not normalised)")
		}
		line("bypass alpha", "%g", r.BypassAlpha)
		out := "token only"
		if a.OutputBypass {
			out = "token + bypass"
		}
		line("architecture", "text width %d; %d anchors x %d layers -> %d; hidden %d; output %d (%s); LayerNorm eps %g; LeakyReLU %g",
			a.TextWidth, a.Anchors, a.Layers, a.InputWidth, a.Hidden, a.OutputWidth, out, a.LNEps, a.LeakySlope)
		line("fourier", "%d frequencies, sigma_t %g, sigma_l %g", r.Fourier.NumW, r.Fourier.SigmaT, r.Fourier.SigmaL)
	} else {
		line("width", "%d", r.Base.TextWidth)
	}
	b := r.Base
	base := []string{fmt.Sprintf("text width %d", b.TextWidth)}
	if b.TextLayers > 0 {
		base = append(base, fmt.Sprintf("%d layers", b.TextLayers))
	}
	if b.VocabSize > 0 {
		base = append(base, fmt.Sprintf("vocab %d", b.VocabSize))
	}
	if b.Hash != "" {
		base = append(base, "hash "+b.Hash)
	}
	line("base model", "%s", strings.Join(base, ", "))
	line("training", "%s", inspectTraining(r.Training))
	line("tensors", "%d tensor%s, %d parameters", r.Tensors, inspectPlural(r.Tensors), r.Params)
	if r.OptimizerStep != nil {
		line("optimizer", "AdamW state at step %d (training can resume)", *r.OptimizerStep)
	} else {
		line("optimizer", "none")
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		line("metadata", "")
	}
	for _, k := range keys {
		line("  "+k, "%s", r.Metadata[k])
	}
	return tw.Flush()
}

func inspectTraining(t plugin.Training) string {
	var parts []string
	add := func(ok bool, format string, a ...any) {
		if ok {
			parts = append(parts, fmt.Sprintf(format, a...))
		}
	}
	add(t.Steps > 0, "%d steps", t.Steps)
	add(t.BatchSize > 0, "batch %d", t.BatchSize)
	add(t.GradAccum > 1, "x %d accumulation", t.GradAccum)
	add(t.LearningRate > 0, "lr %g", t.LearningRate)
	add(t.NestedDropoutProb > 0, "nested dropout %g", t.NestedDropoutProb)
	add(t.NumImages > 0, "%d images", t.NumImages)
	add(t.Seed != 0, "seed %d", t.Seed)
	add(t.Date != "", "%s", t.Date)
	add(t.Tool != "", "by %s", t.Tool)
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}

func inspectSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

func inspectPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
