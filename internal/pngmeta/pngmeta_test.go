package pngmeta

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func testImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			img.Set(x, y, color.NRGBA{uint8(40 * x), uint8(80 * y), 7, 255})
		}
	}
	return img
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		texts []Text
		chunk string // the chunk type the first text must use
	}{
		{"ascii", []Text{{Key, "a cat\nSteps: 5, Seed: 1"}}, "tEXt"},
		{"latin1", []Text{{Key, "café crème"}}, "tEXt"},
		{"utf8", []Text{{Key, "猫 on a mat ✓"}}, "iTXt"},
		{"empty", []Text{{Key, ""}}, "tEXt"},
		{"two", []Text{{Key, "x"}, {"Software", "neti"}}, "tEXt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Encode(&buf, testImage(), tc.texts...); err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(buf.Bytes(), []byte(tc.chunk)) {
				t.Errorf("no %s chunk", tc.chunk)
			}
			got, err := ReadText(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.texts) {
				t.Errorf("read %q, wrote %q", got, tc.texts)
			}
			img, err := png.Decode(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("standard decoder rejects the file: %v", err)
			}
			r, g, b, a := img.At(4, 2).RGBA()
			if img.Bounds() != testImage().Bounds() || r>>8 != 160 || g>>8 != 160 || b>>8 != 7 || a>>8 != 255 {
				t.Errorf("pixels changed: %v", img.At(4, 2))
			}
			var again bytes.Buffer
			Encode(&again, testImage(), tc.texts...)
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("encoding is not deterministic")
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tx := range []Text{{"", "x"}, {strings.Repeat("k", 80), "x"}, {"bad\x01key", "x"}, {Key, "bad\xffutf8"}, {Key, "nul\x00猫"}} {
		if err := Encode(&bytes.Buffer{}, testImage(), tx); err == nil {
			t.Errorf("text %q accepted", tx)
		}
	}
}

func TestReadTextErrors(t *testing.T) {
	var buf bytes.Buffer
	Encode(&buf, testImage(), Text{Key, "hello"})
	good := buf.Bytes()
	corrupt := append([]byte(nil), good...)
	i := bytes.Index(corrupt, []byte("hello"))
	corrupt[i] = 'j'
	for name, b := range map[string][]byte{
		"not png":   []byte("GIF89a...."),
		"truncated": good[:40],
		"crc":       corrupt,
	} {
		if _, err := ReadText(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.png")
	if err := WriteFile(p, testImage(), Text{Key, "x"}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := Lookup(got, Key); !ok || v != "x" {
		t.Errorf("read back %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	bad := filepath.Join(dir, "missing", "out.png")
	if err := WriteFile(bad, testImage()); err == nil {
		t.Error("write into a missing folder succeeded")
	}
	if err := CheckWritable(bad); err == nil {
		t.Error("CheckWritable accepted a missing folder")
	}
	if err := CheckWritable(dir); err == nil {
		t.Error("CheckWritable accepted a folder as output")
	}
	if err := CheckWritable(p); err != nil {
		t.Errorf("CheckWritable on an existing file: %v", err)
	}
}

func TestParamsRoundTrip(t *testing.T) {
	for _, p := range []Params{
		{Prompt: "a red circle on a blue background", Steps: 25, Sampler: "DPM++ 2M", CFGScale: 6, Seed: 1, Width: 64, Height: 64, Model: "sd-shapes"},
		{Prompt: "a cat, sitting", NegativePrompt: "blurry, ugly", Steps: 5, Sampler: "DDIM", CFGScale: 7.5, Seed: 4294967297, Width: 128, Height: 96, Model: "my: model"},
		{Prompt: "line one\nline two", NegativePrompt: "neg\nmore", Steps: 1, Sampler: "Euler a", CFGScale: 1, Width: 8, Height: 8,
			Extra: []Field{{"Latents", `file "x.safetensors"`}, {"Version", "neti 0.1"}}},
		{Prompt: "", Steps: 2, Sampler: "PLMS", CFGScale: 0.5, Seed: 0, Width: 64, Height: 64},
		{Prompt: "猫", NegativePrompt: "Negative prompt: tricky", Steps: 3, Sampler: "DDIM", CFGScale: 2, Seed: 9, Width: 16, Height: 16},
	} {
		s := p.String()
		got, err := ParseParams(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of\n%s\ngave %+v\nwant %+v", s, got, p)
		}
	}
}

func TestParamsFormat(t *testing.T) {
	p := Params{Prompt: "a red circle", NegativePrompt: "blue", Steps: 25, Sampler: "DPM++ 2M", CFGScale: 6, Seed: 1, Width: 64, Height: 64, Model: "sd-shapes"}
	want := "a red circle\nNegative prompt: blue\nSteps: 25, Sampler: DPM++ 2M, CFG scale: 6, Seed: 1, Size: 64x64, Model: sd-shapes"
	if s := p.String(); s != want {
		t.Errorf("got\n%s\nwant\n%s", s, want)
	}
	p.NegativePrompt = ""
	if s := p.String(); strings.Contains(s, "Negative") {
		t.Errorf("empty negative prompt written: %q", s)
	}
}

func TestParseParamsErrors(t *testing.T) {
	for _, s := range []string{
		"no settings",
		"p\nSeed: 1",
		"p\nSteps: x, Seed: 1",
		"p\nSteps: 1, Size: 64",
		"p\nSteps: 1, Steps: 2",
		`p` + "\n" + `Steps: 1, Model: "open`,
		"p\nSteps 1",
	} {
		if _, err := ParseParams(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	f.Add("a cat\nNegative prompt: dog\nSteps: 5, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 64x64")
	f.Add("x\nSteps: 1, Model: \"a, b\"")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // PNG text is Latin-1 or UTF-8 by the time it is parsed
		}
		p, err := ParseParams(s)
		if err != nil {
			return
		}
		// What parses must survive a second round trip unchanged.
		q, err := ParseParams(p.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", p.String(), err)
		}
		if p.String() != q.String() {
			t.Fatalf("unstable: %q vs %q", p.String(), q.String())
		}
	})
}

func FuzzReadText(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, testImage(), Text{Key, "seed"}, Text{"k", "猫"})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadText(bytes.NewReader(b)) // must not panic or hang
	})
}
