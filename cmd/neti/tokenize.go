package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/neti-project/neti/model/tokenizer"
)

// runTokenize shows how a prompt splits into CLIP tokens and which ids the
// text encoder gets, so users can check placeholders and the 75-token limit.
func runTokenize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", "[flags] PROMPT...", stderr)
	model := fs.StringP("model", "m", "", "diffusers model folder (its tokenizer/ is used) or a tokenizer folder (default: the built-in model)")
	asJSON := fs.Bool("json", false, `print {"tokens": every prompt token, "ids": the padded frame, "length": ids before padding, "truncated": bool}`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no prompt given")
	}
	prompt := strings.Join(fs.Args(), " ")

	dir := *model
	if dir == "" {
		d, err := defaultModelDir()
		if err != nil {
			return fmt.Errorf("no --model given: %w", err)
		}
		dir = d
	}
	tok, err := tokenizer.Load(tokenizerDir(dir))
	if err != nil {
		return err
	}

	bpe := tok.Encode(prompt)
	tokens := make([]string, len(bpe))
	for i, id := range bpe {
		tokens[i], _ = tok.Token(id)
	}
	ids, truncated := tok.Frame(bpe)
	window := tok.MaxLength() - 2
	length := min(len(bpe), window) + 2

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false) // keep "</w>" readable
		return enc.Encode(struct {
			Tokens    []string `json:"tokens"`
			IDs       []int    `json:"ids"`
			Length    int      `json:"length"`
			Truncated bool     `json:"truncated"`
		}{tokens, ids, length, truncated})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%5s  %-24s %s\n", "pos", "token", "id")
	fmt.Fprintf(&b, "%5d  %-24s %d\n", 0, "(start)", tok.BOSID())
	for i, t := range tokens {
		if i == window {
			fmt.Fprintf(&b, "%5d  %-24s %d\n", length-1, "(end)", tok.EOSID())
			fmt.Fprintf(&b, "       -- truncated: the tokens below do not fit and are dropped --\n")
		}
		pos := fmt.Sprint(i + 1)
		if i >= window {
			pos = "-"
		}
		fmt.Fprintf(&b, "%5s  %-24s %d\n", pos, t, bpe[i])
	}
	if !truncated {
		fmt.Fprintf(&b, "%5d  %-24s %d\n", length-1, "(end)", tok.EOSID())
	}
	fmt.Fprintf(&b, "length: %d of %d (%d prompt tokens, start and end)\n", length, tok.MaxLength(), min(len(bpe), window))
	if truncated {
		fmt.Fprintf(&b, "warning: the prompt has %d tokens but only %d fit in the %d-token window; the last %d are dropped\n",
			len(bpe), window, tok.MaxLength(), len(bpe)-window)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// tokenizerDir accepts a model folder (with tokenizer/) or a tokenizer
// folder itself (with vocab.json).
func tokenizerDir(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "vocab.json")); err == nil {
		return dir
	}
	return filepath.Join(dir, "tokenizer")
}
