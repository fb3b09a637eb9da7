package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// contractions are tried in this order, like the alternatives of CLIP's
// pattern; only the ASCII apostrophe counts.
var contractions = [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// pieces splits normalized text the way CLIP's regex does, calling emit for
// each piece in order. At each position the first matching rule wins: a
// literal "<|startoftext|>" or "<|endoftext|>", a contraction, a run of
// letters, one number character, or a run of characters that are neither
// whitespace, letters nor numbers. Whitespace between pieces is dropped.
func pieces(s string, emit func(string)) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isSpace(r) {
			i += n
			continue
		}
		if r == '<' {
			if lit, ok := clipSpecial(s[i:]); ok {
				emit(lit)
				i += len(lit)
				continue
			}
		}
		if r == '\'' {
			if c := contraction(s[i:]); c > 0 {
				emit(s[i : i+c])
				i += c
				continue
			}
		}
		var end int
		switch {
		case unicode.IsLetter(r):
			end = scan(s, i, unicode.IsLetter)
		case unicode.IsNumber(r):
			end = i + n
		default:
			end = scan(s, i, func(r rune) bool {
				return !isSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
			})
		}
		emit(s[i:end])
		i = end
	}
}

func clipSpecial(s string) (string, bool) {
	for _, lit := range [...]string{DefaultBOS, DefaultEOS} {
		if strings.HasPrefix(s, lit) {
			return lit, true
		}
	}
	return "", false
}

func contraction(s string) int {
	for _, c := range contractions {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	return 0
}

// scan returns the end of the run of runes satisfying in, starting at i.
func scan(s string, i int, in func(rune) bool) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !in(r) {
			break
		}
		i += n
	}
	return i
}
