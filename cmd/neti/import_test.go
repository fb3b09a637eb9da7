package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/plugin"
)

func importFixture(t *testing.T, name string) string {
	t.Helper()
	p, err := fixtures.Path("neti-import", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		kind    plugin.Kind
		token   string
		compact bool
	}{
		{"neti mapper", []string{importFixture(t, "mapper-steps-10.pt"), "--embeds", importFixture(t, "learned_embeds-steps-10.bin"), "--text-width", "32"}, plugin.KindNeTI, "<toy>", false},
		{"neti compact", []string{importFixture(t, "mapper-steps-10-cudatag.pt"), "--compact"}, plugin.KindNeTI, "<toy>", true},
		{"a1111 with token", []string{importFixture(t, "a1111-toy.pt"), "--token", "<mine>"}, plugin.KindEmbedding, "<mine>", false},
		{"kohya", []string{importFixture(t, "emb-params-toy.safetensors")}, plugin.KindEmbedding, "emb-params-toy", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".neti")
			var stdout, stderr bytes.Buffer
			if err := runImport(append(tc.args, "-o", out), &stdout, &stderr); err != nil {
				t.Fatalf("%v (%s)", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.token) || !strings.Contains(stdout.String(), out) {
				t.Errorf("summary %q", stdout.String())
			}
			c, err := plugin.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != tc.kind || c.Token != tc.token || c.Compact != tc.compact {
				t.Errorf("kind %q token %q compact %v", c.Kind, c.Token, c.Compact)
			}
			if !strings.HasPrefix(c.Metadata["imported_by"], "neti ") {
				t.Errorf("metadata %v", c.Metadata)
			}
		})
	}
}

func TestImportCommandErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "keep.neti")
	if err := os.WriteFile(existing, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src.pt")
	b, err := os.ReadFile(importFixture(t, "a1111-toy.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no args", nil, "exactly one"},
		{"no output", []string{importFixture(t, "a1111-toy.pt")}, "-o"},
		{"two inputs", []string{"a", "b", "-o", existing}, "exactly one"},
		{"evil", []string{importFixture(t, "bad-evil.pt"), "-o", existing}, "allow-list"},
		{"truncated", []string{importFixture(t, "bad-truncated.pt"), "-o", existing}, "truncated"},
		{"wrong width", []string{importFixture(t, "bad-wrongwidth.safetensors"), "--text-width", "32", "-o", existing}, "48"},
		{"onto itself", []string{src, "-o", src}, "input file"},
		{"bad flag", []string{"--nope"}, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runImport(tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.msg)
			}
			if got, _ := os.ReadFile(existing); string(got) != "previous" {
				t.Error("a failed import touched the output file")
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if err := runImport([]string{"--help"}, &stdout, &stderr); !errors.Is(err, errHelp) || !strings.Contains(stderr.String(), "--compact") {
		t.Errorf("--help: %v, usage %q", err, stderr.String())
	}
}
