package pngmeta

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Params are the generation settings in AUTOMATIC1111's "parameters" text.
type Params struct {
	Prompt         string
	NegativePrompt string
	Steps          int
	Sampler        string // display name: "DPM++ 2M", "DDIM", "PLMS", "Euler a"
	CFGScale       float64
	Seed           int64
	Width, Height  int
	Model          string
	// Extra holds further settings in order, written after Model.
	Extra []Field
}

// Field is one "Key: value" setting.
type Field struct {
	Key, Value string
}

const negPrefix = "Negative prompt: "

// String formats p as A1111 does: the prompt, a "Negative prompt:" line
// when there is one, and a line of comma-separated settings. Values
// holding a comma, colon, quote or newline, or with surrounding spaces,
// are written as JSON strings.
func (p Params) String() string {
	var b strings.Builder
	b.WriteString(p.Prompt)
	b.WriteByte('\n')
	if p.NegativePrompt != "" {
		b.WriteString(negPrefix + p.NegativePrompt + "\n")
	}
	fields := []Field{
		{"Steps", strconv.Itoa(p.Steps)},
		{"Sampler", p.Sampler},
		{"CFG scale", strconv.FormatFloat(p.CFGScale, 'g', -1, 64)},
		{"Seed", strconv.FormatInt(p.Seed, 10)},
		{"Size", fmt.Sprintf("%dx%d", p.Width, p.Height)},
	}
	if p.Model != "" {
		fields = append(fields, Field{"Model", p.Model})
	}
	fields = append(fields, p.Extra...)
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Key + ": " + quote(f.Value))
	}
	return b.String()
}

func quote(v string) string {
	if strings.ContainsAny(v, ",:\"\n") || v != strings.TrimSpace(v) {
		q, _ := json.Marshal(v)
		return string(q)
	}
	return v
}

// ParseParams reads A1111 parameters text: the last line holds the
// settings; lines before it are the prompt, then the negative prompt from
// the line starting "Negative prompt: ". Unknown settings go to Extra.
func ParseParams(s string) (Params, error) {
	s = strings.TrimRight(s, "\n")
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return Params{}, fmt.Errorf("pngmeta: parameters have no settings line")
	}
	head, last := s[:i], s[i+1:]
	fields, err := parseFields(last)
	if err != nil {
		return Params{}, err
	}
	var p Params
	if j := strings.Index(head, "\n"+negPrefix); j >= 0 {
		p.Prompt, p.NegativePrompt = head[:j], head[j+1+len(negPrefix):]
	} else if strings.HasPrefix(head, negPrefix) {
		p.NegativePrompt = head[len(negPrefix):]
	} else {
		p.Prompt = head
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.Key] {
			return Params{}, fmt.Errorf("pngmeta: setting %q appears twice", f.Key)
		}
		seen[f.Key] = true
		var err error
		switch f.Key {
		case "Steps":
			p.Steps, err = strconv.Atoi(f.Value)
		case "Sampler":
			p.Sampler = f.Value
		case "CFG scale":
			p.CFGScale, err = strconv.ParseFloat(f.Value, 64)
		case "Seed":
			p.Seed, err = strconv.ParseInt(f.Value, 10, 64)
		case "Size":
			w, h, ok := strings.Cut(f.Value, "x")
			if !ok {
				err = fmt.Errorf("want WIDTHxHEIGHT")
				break
			}
			if p.Width, err = strconv.Atoi(w); err == nil {
				p.Height, err = strconv.Atoi(h)
			}
		case "Model":
			p.Model = f.Value
		default:
			p.Extra = append(p.Extra, f)
		}
		if err != nil {
			return Params{}, fmt.Errorf("pngmeta: setting %s %q: %v", f.Key, f.Value, err)
		}
	}
	if !seen["Steps"] {
		return Params{}, fmt.Errorf("pngmeta: parameters settings line has no Steps: %q", last)
	}
	return p, nil
}

// parseFields splits "K: v, K: "quoted, value", ..." into fields.
func parseFields(line string) ([]Field, error) {
	var out []Field
	rest := strings.TrimSpace(line)
	for rest != "" {
		k, v, ok := strings.Cut(rest, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, ",\"") {
			return nil, fmt.Errorf("pngmeta: malformed setting in %q", line)
		}
		v = strings.TrimLeft(v, " ")
		var val string
		if strings.HasPrefix(v, `"`) {
			end := closingQuote(v)
			if end < 0 {
				return nil, fmt.Errorf("pngmeta: unterminated quoted value of %s", k)
			}
			if err := json.Unmarshal([]byte(v[:end+1]), &val); err != nil {
				return nil, fmt.Errorf("pngmeta: value of %s: %w", k, err)
			}
			v = v[end+1:]
			if t := strings.TrimLeft(v, " "); t != "" && !strings.HasPrefix(t, ",") {
				return nil, fmt.Errorf("pngmeta: text after the quoted value of %s", k)
			}
		} else {
			j := strings.IndexByte(v, ',')
			if j < 0 {
				j = len(v)
			}
			val, v = strings.TrimSpace(v[:j]), v[j:]
		}
		out = append(out, Field{k, val})
		rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimLeft(v, " "), ","))
	}
	return out, nil
}

// closingQuote finds the quote ending a JSON string that starts at s[0].
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// Lookup returns the value of an Extra setting.
func (p Params) Lookup(key string) (string, bool) {
	for _, f := range p.Extra {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}
