package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neti-project/neti/plugin"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	mapper := filepath.Join(dir, "toy.neti")
	compact := filepath.Join(dir, "toy-small.neti")
	emb := filepath.Join(dir, "emb.neti")
	var sink bytes.Buffer
	for _, a := range [][]string{
		{importFixture(t, "mapper-steps-10.pt"), "--embeds", importFixture(t, "learned_embeds-steps-10.bin"), "-o", mapper},
		{importFixture(t, "mapper-steps-10.pt"), "--compact", "-o", compact},
		{importFixture(t, "a1111-toy.pt"), "-o", emb},
	} {
		if err := runImport(a, &sink, &sink); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("text", func(t *testing.T) {
		for _, tc := range []struct {
			file string
			want []string
		}{
			{mapper, []string{"neti-concept 1.0", "full precision", "neti (space-time mapper)", "<toy>", "dog",
				"0.133145", "bypass alpha:", "text width 32; 10 anchors x 16 layers -> 160; hidden 128; output 64 (token + bypass)",
				"1024 frequencies", "10 steps, batch 2, x 4 accumulation", "NeTI (official)", "12 tensors, 373728 parameters",
				"optimizer:", "none", "source_format", "neti-official", "learned_embeds-steps-10.bin"}},
			{compact, []string{"compact (quantised mapper, for sharing)", "<toy>"}},
			{emb, []string{"embedding (2 static vectors)", "a1111-toy", "width:", "32", "1 tensor, 64 parameters", "100 steps", "AUTOMATIC1111"}},
		} {
			var out, errOut bytes.Buffer
			if err := runInspect([]string{tc.file}, &out, &errOut); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%s: output lacks %q:\n%s", filepath.Base(tc.file), w, out.String())
				}
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if err := runInspect([]string{"--json", mapper}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		var r inspectReport
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("not the documented JSON: %v", err)
		}
		c, err := plugin.Read(mapper)
		if err != nil {
			t.Fatal(err)
		}
		if r.Format != plugin.FormatName || r.Version != "1.0" || r.Kind != "neti" || r.Token != "<toy>" ||
			r.NormScale != c.NormScale || r.Arch == nil || r.Arch.OutputWidth != 64 || r.Params != c.ParamCount() ||
			r.Tensors != 12 || r.Compact || r.Bytes < 1000 || r.Training.Steps != 10 || r.Base.TextWidth != 32 {
			t.Errorf("report %+v", r)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{nil, "exactly one"},
			{[]string{mapper, emb}, "exactly one"},
			{[]string{importFixture(t, "a1111-toy.pt")}, "neti import"},
			{[]string{importFixture(t, "learned_embeds.safetensors")}, "safetensors"},
			{[]string{filepath.Join(dir, "missing.neti")}, "missing.neti"},
		} {
			var out, errOut bytes.Buffer
			err := runInspect(tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v: got %v, want an error mentioning %q", tc.args, err, tc.msg)
			}
		}
	})
}
