package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

type tokenizerEntry struct {
	Text     string   `json:"text"`
	Tokens   []string `json:"tokens"`
	Unpadded []int    `json:"ids_unpadded"`
	Padded   []int    `json:"ids_padded_77"`
}

func sdTinyTokenizerCase(t *testing.T) (modelDir string, entries []tokenizerEntry) {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Case("tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Output("entries", &entries); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(m.Root(), "model"), entries
}

func TestTokenizeJSON(t *testing.T) {
	model, entries := sdTinyTokenizerCase(t)
	for _, e := range entries {
		var out, errOut bytes.Buffer
		if err := runTokenize([]string{"-m", model, "--json", e.Text}, &out, &errOut); err != nil {
			t.Fatalf("%q: %v (%s)", e.Text, err, errOut.String())
		}
		var got struct {
			Tokens    []string `json:"tokens"`
			IDs       []int    `json:"ids"`
			Length    *int     `json:"length"`
			Truncated *bool    `json:"truncated"`
		}
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%q: output is not the documented JSON: %v", e.Text, err)
		}
		if got.Length == nil || got.Truncated == nil || got.Tokens == nil {
			t.Fatalf("%q: missing fields in %+v", e.Text, got)
		}
		wantTrunc := len(e.Unpadded) > 77
		if !slices.Equal(got.Tokens, e.Tokens) || !slices.Equal(got.IDs, e.Padded) ||
			*got.Length != min(len(e.Unpadded), 77) || *got.Truncated != wantTrunc {
			t.Errorf("%q: got tokens %q ids %v length %d truncated %v", e.Text, got.Tokens, got.IDs, *got.Length, *got.Truncated)
		}
	}
}

func TestTokenizeHuman(t *testing.T) {
	model, entries := sdTinyTokenizerCase(t)
	var long tokenizerEntry
	for _, e := range entries {
		if len(e.Unpadded) > 77 {
			long = e
		}
	}
	if long.Text == "" {
		t.Fatal("fixture has no over-long prompt")
	}
	for _, c := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"--model", filepath.Join(model, "tokenizer"), "a", "photo", "of", "a", "cat"},
			[]string{"pho ", "to</w>", "cat</w>", " 690\n", "length: 9 of 77"}, []string{"truncated", "warning"}},
		{[]string{"-m", model, long.Text},
			[]string{"length: 77 of 77", "truncated", strconv.Itoa(len(long.Unpadded)-2) + " tokens but only 75 fit"}, nil},
	} {
		var out, errOut bytes.Buffer
		if err := runTokenize(c.args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out.String())
			}
		}
		for _, w := range c.not {
			if strings.Contains(out.String(), w) {
				t.Errorf("%v: output has %q:\n%s", c.args, w, out.String())
			}
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	model, _ := sdTinyTokenizerCase(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", model}, "no prompt"},
		{[]string{"-m", filepath.Join(t.TempDir(), "missing"), "a cat"}, "vocab.json"},
		{[]string{"--bogus", "a cat"}, "bogus"},
	} {
		var out, errOut bytes.Buffer
		err := runTokenize(c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.args, err, c.want)
		}
	}
	var out, errOut bytes.Buffer
	if err := runTokenize([]string{"--help"}, &out, &errOut); err != errHelp || !strings.Contains(errOut.String(), "--json") {
		t.Errorf("--help: %v, usage %q", err, errOut.String())
	}
}
