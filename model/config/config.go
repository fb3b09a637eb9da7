// Package config reads the config.json files of a diffusers Stable
// Diffusion folder into typed structs. Keys a file leaves out take the
// defaults of diffusers 0.19 / transformers 4.30 (the versions the
// reference fixtures were made with), and each Validate rejects, with a
// message naming the key, the features this engine does not implement.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// maxConfigSize bounds a config file; the largest real ones (a scheduler
// with 1000 trained betas) are a few tens of KB.
const maxConfigSize = 16 << 20

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes: not a config file", maxConfigSize)
	}
	return b, nil
}

// pythonJSON rewrites the NaN, Infinity and -Infinity that Python's json
// module writes (diffusers stores lambda_min_clipped = -inf that way) to
// null, outside string literals only, so encoding/json accepts the file. A
// null leaves the field at its default, which for every such key in
// diffusers configs is the same non-finite value or "unset".
func pythonJSON(b []byte) []byte {
	var out []byte // allocated on the first rewrite only
	inString, escaped := false, false
	last := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		var n int
		for _, tok := range []string{"NaN", "Infinity", "-Infinity"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) && !identChar(b, i+len(tok)) && (i == 0 || !identChar(b, i-1)) {
				n = len(tok)
				break
			}
		}
		if n == 0 {
			continue
		}
		out = append(out, b[last:i]...)
		out = append(out, "null"...)
		i += n - 1
		last = i + 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

func identChar(b []byte, i int) bool {
	if i < 0 || i >= len(b) {
		return false
	}
	c := b[i]
	return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// decode parses a config object after the Python fix-up. It also returns
// the raw members, so callers can tell an explicit null from a missing key.
func decode(b []byte, v any) (map[string]json.RawMessage, error) {
	b = pythonJSON(b)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("config is null, not an object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return raw, nil
}

func isNull(raw map[string]json.RawMessage, key string) bool {
	v, ok := raw[key]
	return ok && bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// intOrList is a JSON value that is either one int or a list of ints, as
// attention_head_dim and friends are. nil means the key was null or absent.
type intOrList []int

func (l *intOrList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var v []int
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want an int or a list of ints: %w", err)
	}
	*l = intOrList{n}
	return nil
}

// perBlock spreads a single value over n blocks, or checks a list has one
// entry per block.
func (l intOrList) perBlock(key string, n int) ([]int, error) {
	switch len(l) {
	case 0:
		return nil, nil
	case 1:
		out := make([]int, n)
		for i := range out {
			out[i] = l[0]
		}
		return out, nil
	case n:
		return append([]int(nil), l...), nil
	}
	return nil, fmt.Errorf("%s has %d entries for %d blocks", key, len(l), n)
}

// boolOrList is a bool or a list of bools (only_cross_attention).
type boolOrList []bool

func (l *boolOrList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var v []bool
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var v bool
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want a bool or a list of bools: %w", err)
	}
	*l = boolOrList{v}
	return nil
}

func (l boolOrList) any() bool {
	for _, v := range l {
		if v {
			return true
		}
	}
	return false
}

// sizeValue reads sample_size, an int or an [h, w] pair; a pair must be
// square since the models here take square latents.
type sizeValue int

func (s *sizeValue) UnmarshalJSON(b []byte) error {
	var l intOrList
	if err := l.UnmarshalJSON(b); err != nil {
		return err
	}
	switch {
	case len(l) == 0:
		return nil
	case len(l) == 1 || (len(l) == 2 && l[0] == l[1]):
		*s = sizeValue(l[0])
		return nil
	}
	return fmt.Errorf("sample_size %v is not square", []int(l))
}

// Limits on sizes, so that a hostile config cannot make later code build
// enormous name tables or shape products.
const (
	maxBlocks   = 16
	maxLayers   = 64
	maxChannels = 1 << 16
)

func checkRange(what string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s is %d, want %d..%d", what, v, lo, hi)
	}
	return nil
}
