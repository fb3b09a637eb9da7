package tokenizer

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxFixRounds bounds the repeat-until-stable text fixing. ftfy loops
// without a bound, but each round can only peel one level of escaping, so a
// hostile "&amp;amp;amp;..." would otherwise cost quadratic time.
const maxFixRounds = 32

// normalize turns a raw prompt segment into the text CLIP's pre-tokenizer
// sees: fixText, then whitespace collapsing, then Python-style lowercasing.
func normalize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = fixText(s)
	s = collapseSpace(s)
	return pyLower(s)
}

// fixText applies, until nothing changes, the parts of the reference
// pipeline that rewrite text: HTML character references are decoded
// (OpenAI's tokenizer calls html.unescape twice after ftfy, and ftfy itself
// unescapes until stable), then the deterministic ftfy.fix_text repairs:
// Latin ligatures, full/half-width forms, curly quotes, and NFC.
// ftfy's heuristic mojibake repair, C1/control-character and terminal-escape
// removal are not reproduced; the fixture prompts never trigger them.
func fixText(s string) string {
	for range maxFixRounds {
		next := norm.NFC.String(uncurlQuotes(fixWidth(fixLigatures(html.UnescapeString(s)))))
		if next == s {
			break
		}
		s = next
	}
	return s
}

// ligatures is ftfy's table of Latin ligatures that it splits into letters
// (it keeps typographic ones like "Æ" that are letters in their own right).
var ligatures = map[rune]string{
	'Ĳ': "IJ", 'ĳ': "ij", 'ŉ': "ʼn",
	'Ǳ': "DZ", 'ǲ': "Dz", 'ǳ': "dz",
	'Ǆ': "DŽ", 'ǅ': "Dž", 'ǆ': "dž",
	'Ǉ': "LJ", 'ǈ': "Lj", 'ǉ': "lj",
	'Ǌ': "NJ", 'ǋ': "Nj", 'ǌ': "nj",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "ſt", 'ﬆ': "st",
}

func fixLigatures(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		v, ok := ligatures[r]
		return v, ok
	})
}

// fixWidth maps the Halfwidth and Fullwidth Forms block (U+FF01..U+FFEF) to
// its NFKC equivalent and U+3000 IDEOGRAPHIC SPACE to a space, as ftfy does;
// the rest of the text is left alone (full NFKC would be far more invasive).
func fixWidth(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		switch {
		case r == '\u3000':
			return " ", true
		case r >= 0xFF01 && r <= 0xFFEF:
			v := norm.NFKC.String(string(r))
			return v, v != string(r)
		}
		return "", false
	})
}

// uncurlQuotes follows ftfy: U+02BC and U+2018..U+201B become an apostrophe,
// U+201C..U+201F a double quote. This is what lets "don’t" hit the 't
// contraction rule.
func uncurlQuotes(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		switch {
		case r == '\u02BC' || (r >= '\u2018' && r <= '\u201B'):
			return "'", true
		case r >= '\u201C' && r <= '\u201F':
			return `"`, true
		}
		return "", false
	})
}

// mapRunes replaces the runes f maps, copying only when something changes.
func mapRunes(s string, f func(rune) (string, bool)) string {
	var b strings.Builder
	changed := false
	for i, r := range s {
		v, ok := f(r)
		switch {
		case ok && !changed:
			changed = true
			b.Grow(len(s) + 8)
			b.WriteString(s[:i])
			b.WriteString(v)
		case ok:
			b.WriteString(v)
		case changed:
			b.WriteRune(r)
		}
	}
	if !changed {
		return s
	}
	return b.String()
}

// isSpace is Python's str.isspace, which the reference's `\s+` uses: Go's
// Unicode White_Space set (which includes U+00A0, U+2000.., U+3000) plus the
// information separators U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F)
}

// collapseSpace replaces every whitespace run by one space and trims.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pending := false
	for _, r := range s {
		if isSpace(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pyLower is Python's str.lower: simple lowercase mappings plus the two
// context-free/contextual extras of the full mapping, U+0130 -> "i\u0307"
// and capital sigma -> final "ς" at the end of a word (Go's strings.ToLower
// does neither).
func pyLower(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch r {
		case '\u0130':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Unicode's Final_Sigma condition for the Σ at byte i:
// preceded by a cased letter and not followed by one, skipping
// case-ignorable characters on both sides.
func finalSigma(s string, i int) bool {
	j := i
	before := false
	for j > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:j])
		j -= n
		if !caseIgnorable(r) {
			before = cased(r)
			break
		}
	}
	if !before {
		return false
	}
	for _, r := range s[i+len("Σ"):] {
		if !caseIgnorable(r) {
			return !cased(r)
		}
	}
	return true
}

// cased is Unicode's Cased property (Lowercase, Uppercase or Lt).
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable property; Go has no Word_Break
// table, so its MidLetter/MidNumLet/Single_Quote part is listed by hand.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '\u00B7', '\u0387', '\u055F', '\u05F4', '\u2018', '\u2019',
		'\u2024', '\u2027', '\uFE13', '\uFE52', '\uFE55', '\uFF07', '\uFF0E', '\uFF1A':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
