// Package pngmeta writes PNG files that carry text chunks (the generation
// parameters, under the key "parameters" as AUTOMATIC1111 does), reads
// them back, and formats and parses those parameters in A1111's layout:
//
//	a red circle on a blue background
//	Negative prompt: blurry
//	Steps: 25, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 64x64, Model: sd-shapes
package pngmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Key is the text chunk keyword A1111 and its readers use.
const Key = "parameters"

var signature = []byte("\x89PNG\r\n\x1a\n")

// maxChunk bounds one chunk read back (text chunks are small; image data
// is skipped, not read).
const maxChunk = 1 << 24

// Text is one keyword/value pair of a PNG text chunk.
type Text struct {
	Key, Value string
}

// Encode writes img as a PNG with the text chunks placed right after the
// header, so readers that stop at the image data still find them. Text
// that Latin-1 can hold goes into tEXt chunks, other text into iTXt
// (UTF-8), as PIL does. The encoding is deterministic: the same image and
// text give the same bytes.
func Encode(w io.Writer, img image.Image, texts ...Text) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("pngmeta: encode: %w", err)
	}
	b := buf.Bytes()
	// The Go encoder writes the signature and then IHDR (13 bytes of data
	// in a 25-byte chunk) first; text goes after it.
	const ihdrEnd = 8 + 25
	if len(b) < ihdrEnd || !bytes.Equal(b[:8], signature) || string(b[12:16]) != "IHDR" {
		return errors.New("pngmeta: encoder output does not start with IHDR")
	}
	var chunks bytes.Buffer
	for _, t := range texts {
		typ, data, err := textChunk(t)
		if err != nil {
			return err
		}
		writeChunk(&chunks, typ, data)
	}
	for _, part := range [][]byte{b[:ihdrEnd], chunks.Bytes(), b[ihdrEnd:]} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("pngmeta: write: %w", err)
		}
	}
	return nil
}

func validKey(k string) bool {
	if len(k) < 1 || len(k) > 79 || k[0] == ' ' || k[len(k)-1] == ' ' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 32 || c > 126 {
			return false
		}
	}
	return true
}

func textChunk(t Text) (string, []byte, error) {
	if !validKey(t.Key) {
		return "", nil, fmt.Errorf("pngmeta: text keyword %q is not 1-79 printable ASCII characters", t.Key)
	}
	if !utf8.ValidString(t.Value) {
		return "", nil, fmt.Errorf("pngmeta: text %q is not valid UTF-8", t.Key)
	}
	latin1 := make([]byte, 0, len(t.Value))
	for _, r := range t.Value {
		if r > 0xff || r == 0 {
			latin1 = nil
			break
		}
		latin1 = append(latin1, byte(r))
	}
	if latin1 != nil || t.Value == "" {
		return "tEXt", append(append([]byte(t.Key), 0), latin1...), nil
	}
	if bytes.IndexByte([]byte(t.Value), 0) >= 0 {
		return "", nil, fmt.Errorf("pngmeta: text %q contains a NUL character", t.Key)
	}
	// iTXt: keyword, NUL, compression flag 0, method 0, empty language
	// tag, NUL, empty translated keyword, NUL, UTF-8 text.
	d := append([]byte(t.Key), 0, 0, 0, 0, 0)
	return "iTXt", append(d, t.Value...), nil
}

func writeChunk(w *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	w.WriteString(typ)
	w.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}

// WriteFile writes the PNG atomically: to a temporary file in the same
// folder, synced, then renamed over path, so a crash or a full disk never
// leaves a truncated image under the final name.
func WriteFile(path string, img image.Image, texts ...Text) error {
	var buf bytes.Buffer
	if err := Encode(&buf, img, texts...); err != nil {
		return err
	}
	return writeAtomic(path, buf.Bytes())
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pngmeta: write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	werr = errors.Join(werr, tmp.Sync(), tmp.Close())
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pngmeta: write %s: %w", path, werr)
	}
	return nil
}

// CheckWritable fails when a file cannot be created at path, without
// leaving anything behind, so a long generation does not end in an
// unwritable output.
func CheckWritable(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a folder", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("output %s: folder %s does not exist", path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("output %s: cannot write in %s: %w", path, dir, err)
	}
	name := tmp.Name()
	tmp.Close()
	return os.Remove(name)
}

// ReadText returns the tEXt and iTXt chunks of a PNG stream, in file
// order (compressed zTXt and compressed iTXt are skipped).
func ReadText(r io.Reader) ([]Text, error) {
	var sig [8]byte
	if _, err := io.ReadFull(r, sig[:]); err != nil || !bytes.Equal(sig[:], signature) {
		return nil, errors.New("pngmeta: not a PNG file")
	}
	var out []Text
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("pngmeta: truncated PNG: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if typ == "IEND" {
			return out, nil
		}
		if typ != "tEXt" && typ != "iTXt" {
			if _, err := io.CopyN(io.Discard, r, n+4); err != nil {
				return nil, fmt.Errorf("pngmeta: truncated %s chunk: %w", typ, err)
			}
			continue
		}
		if n > maxChunk {
			return nil, fmt.Errorf("pngmeta: %s chunk of %d bytes is too large", typ, n)
		}
		data := make([]byte, n+4)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("pngmeta: truncated %s chunk: %w", typ, err)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:8])
		crc.Write(data[:n])
		if crc.Sum32() != binary.BigEndian.Uint32(data[n:]) {
			return nil, fmt.Errorf("pngmeta: %s chunk: CRC mismatch", typ)
		}
		if t, ok := parseText(typ, data[:n]); ok {
			out = append(out, t)
		}
	}
}

func parseText(typ string, d []byte) (Text, bool) {
	key, rest, ok := bytes.Cut(d, []byte{0})
	if !ok {
		return Text{}, false
	}
	if typ == "tEXt" {
		runes := make([]rune, len(rest))
		for i, c := range rest {
			runes[i] = rune(c) // Latin-1
		}
		return Text{string(key), string(runes)}, true
	}
	if len(rest) < 2 || rest[0] != 0 { // compressed iTXt
		return Text{}, false
	}
	_, rest, ok = bytes.Cut(rest[2:], []byte{0}) // language tag
	if !ok {
		return Text{}, false
	}
	_, rest, ok = bytes.Cut(rest, []byte{0}) // translated keyword
	if !ok || !utf8.Valid(rest) {
		return Text{}, false
	}
	return Text{string(key), string(rest)}, true
}

// ReadFile returns the text chunks of a PNG file.
func ReadFile(path string) ([]Text, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pngmeta: %w", err)
	}
	defer f.Close()
	t, err := ReadText(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}

// Lookup returns the value of the first chunk with key.
func Lookup(texts []Text, key string) (string, bool) {
	for _, t := range texts {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}
