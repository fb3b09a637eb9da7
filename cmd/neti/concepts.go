package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/neti-project/neti/model/neti"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
)

// loadConcepts reads every --concept flag ("file[:trunc=K,scale=S]");
// globalTrunc (--truncation) applies where a file sets none.
func loadConcepts(flags []string, globalTrunc int) ([]neti.ConceptFile, error) {
	var out []neti.ConceptFile
	for _, f := range flags {
		path, trunc, scale, err := neti.ParseConceptFlag(f)
		if err != nil {
			return nil, err
		}
		c, err := plugin.Read(path)
		if err != nil {
			return nil, err
		}
		if trunc < 0 {
			trunc = globalTrunc
		}
		out = append(out, neti.ConceptFile{Path: path, Concept: c, Truncation: trunc, Scale: scale})
	}
	return out, nil
}

// conceptPrompt turns a prompt that names concepts into token ids with each
// concept's trigger as one added token (repeated once per vector for
// multi-vector embeddings), and the uses that tell the conditioner what to
// inject where. Warnings are for problems that still give a correct image.
func conceptPrompt(m *sd.Model, prompt string, files []neti.ConceptFile) (ids []int, uses []neti.ConceptUse, warnings []string, err error) {
	p, err := neti.PreparePrompt(prompt, files)
	if err != nil {
		return nil, nil, nil, err
	}
	fp, fpErr := m.Fingerprint()
	vectors := map[int]int{}
	for _, f := range files {
		c := f.Concept
		if fpErr == nil && c.Base.Hash != "" && c.Base.Hash != fp.Hash && c.Base.TextWidth == fp.TextWidth {
			warnings = append(warnings, fmt.Sprintf("%s was made for another base model (text encoder %s, this one %s): it may not work as trained", f.Path, c.Base.Hash, fp.Hash))
		}
		id, ok := m.Tokenizer.ID(c.Token)
		if !ok {
			if id, err = m.Tokenizer.AddToken(c.Token); err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", f.Path, err)
			}
		} else if id < m.Text.Vocab {
			return nil, nil, nil, fmt.Errorf("%s: its trigger %s is a word of the model's vocabulary; rename it (neti import --token)", f.Path, c.Token)
		}
		if c.Kind == plugin.KindEmbedding && c.Embedding != nil {
			vectors[id] = c.Embedding.Shape[0]
		}
		uses = append(uses, neti.ConceptUse{Concept: c, TokenID: id, Truncation: f.Truncation, Strength: f.Scale * p.Strength[c.Token]})
	}
	for _, miss := range p.Missing {
		warnings = append(warnings, fmt.Sprintf("concept %s is loaded but the prompt does not name it", miss))
	}
	raw, _, truncated := m.Tokenizer.EncodePadded(p.Text)
	ids, more := neti.ExpandEmbeddings(raw, vectors, m.Tokenizer.EOSID(), m.Tokenizer.PadID())
	if truncated || more {
		warnings = append(warnings, fmt.Sprintf("the prompt is longer than %d tokens; the rest is ignored", m.Tokenizer.MaxLength()-2))
	}
	// Keep only the concepts the prompt uses.
	present := map[int]bool{}
	for _, id := range ids {
		present[id] = true
	}
	kept := uses[:0]
	for _, u := range uses {
		if present[u.TokenID] {
			kept = append(kept, u)
		}
	}
	return ids, kept, warnings, nil
}

// describeConcepts is the PNG parameters' record of the concepts used:
// "cat.neti <cat> trunc 16 strength 0.8; hat.neti <hat>".
func describeConcepts(files []neti.ConceptFile, uses []neti.ConceptUse) string {
	var parts []string
	for _, u := range uses {
		name := u.Concept.Token
		for _, f := range files {
			if f.Concept == u.Concept {
				name = filepath.Base(f.Path) + " " + u.Concept.Token
			}
		}
		s := name
		if u.Truncation >= 0 && u.Concept.Kind == plugin.KindNeTI {
			s += fmt.Sprintf(" trunc %d", u.Truncation)
		}
		if u.Strength != 1 {
			s += fmt.Sprintf(" strength %g", u.Strength)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
