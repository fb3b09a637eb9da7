package neti

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/neti-project/neti/plugin"
)

// ConceptFile is a concept loaded for a generation with its per-file
// options (`--concept cat.neti:trunc=16,scale=0.8`).
type ConceptFile struct {
	Path       string
	Concept    *plugin.Concept
	Truncation int     // -1: none (or the global --truncation)
	Scale      float64 // strength multiplier from the flag (1)
}

// Stem is the file name without extension: A1111 and ComfyUI users write
// an embedding's file name as its trigger.
func (f ConceptFile) Stem() string {
	return strings.TrimSuffix(filepath.Base(f.Path), filepath.Ext(f.Path))
}

// ParseConceptFlag splits "path[:trunc=K,scale=S]".
func ParseConceptFlag(s string) (path string, trunc int, scale float64, err error) {
	trunc, scale = -1, 1
	path = s
	if i := strings.LastIndex(s, ":"); i > 0 && strings.Contains(s[i:], "=") {
		path = s[:i]
		for _, kv := range strings.Split(s[i+1:], ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				return "", 0, 0, fmt.Errorf("--concept %s: option %q is not key=value", s, kv)
			}
			switch strings.ToLower(k) {
			case "trunc", "truncation":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return "", 0, 0, fmt.Errorf("--concept %s: trunc must be a non-negative integer, not %q", s, v)
				}
				trunc = n
			case "scale", "strength", "weight":
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return "", 0, 0, fmt.Errorf("--concept %s: scale must be a number, not %q", s, v)
				}
				scale = f
			default:
				return "", 0, 0, fmt.Errorf("--concept %s: unknown option %q (trunc, scale)", s, k)
			}
		}
	}
	if path == "" {
		return "", 0, 0, fmt.Errorf("--concept %q: no file", s)
	}
	return path, trunc, scale, nil
}

// Prompt is a prompt rewritten for the tokenizer: every way a concept is
// named (its trigger "<cat>", its file stem "cat", "embedding:cat") is
// replaced by the trigger, and A1111 emphasis around a concept,
// "(<cat>:1.2)", "(<cat>)" (x1.1) or "[<cat>]" (/1.1), becomes that
// concept's strength.
type Prompt struct {
	Text     string
	Strength map[string]float64 // by trigger token; 1 unless emphasised
	Missing  []string           // concepts loaded but not named in the prompt
}

var (
	weightRe = regexp.MustCompile(`\(\s*([^():\[\]]+?)\s*:\s*([-+]?[0-9]*\.?[0-9]+)\s*\)`)
	parenRe  = regexp.MustCompile(`\(\s*([^():\[\]]+?)\s*\)`)
	brackRe  = regexp.MustCompile(`\[\s*([^():\[\]]+?)\s*\]`)
)

// PreparePrompt rewrites prompt for the given concepts. Two concepts with
// the same trigger are an error.
func PreparePrompt(prompt string, files []ConceptFile) (Prompt, error) {
	p := Prompt{Text: prompt, Strength: map[string]float64{}}
	byName := map[string]string{} // lowercase alias -> trigger
	for _, f := range files {
		tok := f.Concept.Token
		if tok == "" {
			return p, fmt.Errorf("concept %s has no trigger token", f.Path)
		}
		lt := strings.ToLower(tok)
		if prev, ok := byName[lt]; ok {
			return p, fmt.Errorf("two concepts use the trigger %s (%s and %s): rename one with neti import --token", tok, prev, f.Path)
		}
		byName[lt] = f.Path
		p.Strength[tok] = 1
	}
	aliases := map[string]string{}
	for _, f := range files {
		tok := f.Concept.Token
		bare := strings.Trim(tok, "<>")
		for _, a := range []string{bare, f.Stem()} {
			if a != "" && !strings.EqualFold(a, tok) {
				aliases[strings.ToLower(a)] = tok
			}
		}
	}
	text := prompt
	// embedding:name (ComfyUI) first, then bare names as whole words.
	text = regexp.MustCompile(`(?i)embedding:([A-Za-z0-9_.\-<>]+)`).ReplaceAllStringFunc(text, func(m string) string {
		name := strings.ToLower(strings.TrimPrefix(strings.ToLower(m), "embedding:"))
		name = strings.TrimSuffix(name, filepath.Ext(name))
		if t, ok := aliases[strings.Trim(name, "<>")]; ok {
			return t
		}
		if _, ok := byName[name]; ok {
			return name
		}
		return m
	})
	for alias, tok := range aliases {
		re := regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_<])` + regexp.QuoteMeta(alias) + `($|[^A-Za-z0-9_>])`)
		text = re.ReplaceAllString(text, "${1}"+tok+"${2}")
	}
	isConcept := func(s string) (string, bool) {
		for _, f := range files {
			if strings.EqualFold(strings.TrimSpace(s), f.Concept.Token) {
				return f.Concept.Token, true
			}
		}
		return "", false
	}
	var err error
	text = weightRe.ReplaceAllStringFunc(text, func(m string) string {
		sub := weightRe.FindStringSubmatch(m)
		tok, ok := isConcept(sub[1])
		if !ok {
			return m
		}
		w, perr := strconv.ParseFloat(sub[2], 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("prompt: bad weight in %q", m)
		}
		p.Strength[tok] *= w
		return tok
	})
	for _, re := range []struct {
		r *regexp.Regexp
		f float64
	}{{parenRe, 1.1}, {brackRe, 1 / 1.1}} {
		text = re.r.ReplaceAllStringFunc(text, func(m string) string {
			sub := re.r.FindStringSubmatch(m)
			tok, ok := isConcept(sub[1])
			if !ok {
				return m
			}
			p.Strength[tok] *= re.f
			return tok
		})
	}
	if err != nil {
		return p, err
	}
	p.Text = text
	for _, f := range files {
		if !strings.Contains(strings.ToLower(text), strings.ToLower(f.Concept.Token)) {
			p.Missing = append(p.Missing, f.Concept.Token)
		}
	}
	return p, nil
}

// ExpandEmbeddings repeats the id of each multi-vector textual-inversion
// concept once per vector (its vectors take consecutive positions), keeping
// the frame: BOS first, EOS last, padded with pad to the same length.
func ExpandEmbeddings(ids []int, vectors map[int]int, eos, pad int) (out []int, truncated bool) {
	n := len(ids)
	body := []int{}
	for _, id := range ids[1:] {
		if id == eos {
			break
		}
		k := vectors[id]
		if k < 1 {
			k = 1
		}
		for j := 0; j < k; j++ {
			body = append(body, id)
		}
	}
	if len(body) > n-2 {
		body, truncated = body[:n-2], true
	}
	out = append([]int{ids[0]}, body...)
	out = append(out, eos)
	for len(out) < n {
		out = append(out, pad)
	}
	return out, truncated
}
