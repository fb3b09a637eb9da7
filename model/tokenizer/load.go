package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// File size limits: SD's vocab.json is 1.6 MB and merges.txt 0.5 MB, so
// these only stop a wrong path from being read into memory whole.
const (
	maxVocabFile  = 64 << 20
	maxMergesFile = 64 << 20
	maxConfigFile = 4 << 20
)

const maxMerges = 49152 - 256 - 2

// Load reads a diffusers/transformers tokenizer folder: vocab.json and
// merges.txt (required), then tokenizer_config.json and
// special_tokens_map.json (optional; the map wins where both name a token)
// for the BOS/EOS/pad strings and model_max_length, and added_tokens.json
// (optional) for tokens added after training, e.g. by textual inversion.
// A model_max_length that is absent, or is transformers' "unlimited"
// sentinel (about 1e30), means 77.
func Load(dir string) (*Tokenizer, error) {
	vocabPath := filepath.Join(dir, "vocab.json")
	raw, err := readLimited(vocabPath, maxVocabFile)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: %w", dir, err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: want a JSON object of token -> integer id: %w", vocabPath, err)
	}

	mergesPath := filepath.Join(dir, "merges.txt")
	raw, err = readLimited(mergesPath, maxMergesFile)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: %w", dir, err)
	}
	merges := parseMerges(string(raw))
	// transformers' CLIPTokenizer reads at most this many merges (CLIP's
	// 49152-token budget minus bytes and specials) and ignores the rest.
	if len(merges) > maxMerges {
		merges = merges[:maxMerges]
	}

	var opts Options
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if err := readConfig(filepath.Join(dir, name), &opts); err != nil {
			return nil, err
		}
	}
	t, err := build(vocab, merges, opts)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: %w", dir, err)
	}
	if err := loadAdded(t, filepath.Join(dir, "added_tokens.json")); err != nil {
		return nil, err
	}
	return t, nil
}

// parseMerges drops the "#version" header line and blank lines. Blank lines
// carry no rule, and ranks only matter relative to each other.
func parseMerges(text string) []string {
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && strings.HasPrefix(lines[0], "#version") {
		lines = lines[1:]
	}
	out := lines[:0]
	for _, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// readConfig fills the fields of opts that path names; a missing file is
// not an error.
func readConfig(path string, opts *Options) error {
	raw, err := readLimited(path, maxConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokenizer: load %s: %w", filepath.Dir(path), err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("tokenizer: load %s: %w", path, err)
	}
	for key, dst := range map[string]*string{"bos_token": &opts.BOS, "eos_token": &opts.EOS, "pad_token": &opts.Pad} {
		v, ok := cfg[key]
		if !ok {
			continue
		}
		s, err := tokenString(v)
		if err != nil {
			return fmt.Errorf("tokenizer: load %s: %s: %w", path, key, err)
		}
		if s != "" {
			*dst = s
		}
	}
	if v, ok := cfg["model_max_length"]; ok {
		n, err := maxLength(v)
		if err != nil {
			return fmt.Errorf("tokenizer: load %s: model_max_length: %w", path, err)
		}
		opts.MaxLength = n
	}
	return nil
}

// tokenString accepts both spellings transformers writes: a plain string or
// an AddedToken object {"content": ...}. null means unset.
func tokenString(v json.RawMessage) (string, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(v, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %.60s", v)
	}
	return *obj.Content, nil
}

// maxLength parses model_max_length; 0 (meaning the default) for null or
// values above maxMaxLength, which transformers uses for "no limit".
func maxLength(v json.RawMessage) (int, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return 0, nil
	}
	var num json.Number
	if err := json.Unmarshal(v, &num); err != nil {
		return 0, fmt.Errorf("want a number, got %.60s", v)
	}
	f, err := strconv.ParseFloat(num.String(), 64)
	if err != nil {
		return 0, fmt.Errorf("want a number, got %s", num)
	}
	if f > maxMaxLength {
		return 0, nil
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("want an integer, got %s", num)
	}
	if f < 2 {
		return 0, fmt.Errorf("%s is too small (BOS and EOS need 2)", num)
	}
	return int(f), nil
}

// loadAdded registers added_tokens.json entries in id order; each id must be
// the next free one, as transformers assigns them.
func loadAdded(t *Tokenizer, path string) error {
	raw, err := readLimited(path, maxConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokenizer: load %s: %w", filepath.Dir(path), err)
	}
	var added map[string]int
	if err := json.Unmarshal(raw, &added); err != nil {
		return fmt.Errorf("tokenizer: load %s: want a JSON object of token -> integer id: %w", path, err)
	}
	toks := make([]string, 0, len(added))
	for tok := range added {
		toks = append(toks, tok)
	}
	sort.Slice(toks, func(i, j int) bool { return added[toks[i]] < added[toks[j]] })
	for _, tok := range toks {
		if id, ok := t.ID(tok); ok && id == added[tok] {
			continue // transformers also lists special tokens already in the vocabulary
		}
		if want := t.VocabSize(); added[tok] != want {
			return fmt.Errorf("tokenizer: load %s: token %q has id %d, want the next free id %d", path, tok, added[tok], want)
		}
		if _, err := t.addToken(tok); err != nil {
			return fmt.Errorf("tokenizer: load %s: %w", path, err)
		}
	}
	return nil
}

// readLimited reads a whole file that must not exceed limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, limit>>20)
	}
	return b, nil
}
