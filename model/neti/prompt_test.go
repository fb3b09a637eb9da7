package neti

import (
	"math"
	"testing"

	"github.com/neti-project/neti/plugin"
)

func TestParseConceptFlag(t *testing.T) {
	for _, c := range []struct {
		in    string
		path  string
		trunc int
		scale float64
		bad   bool
	}{
		{"cat.neti", "cat.neti", -1, 1, false},
		{"dir/cat.neti:trunc=16,scale=0.8", "dir/cat.neti", 16, 0.8, false},
		{"c:/x/cat.neti:scale=2", "c:/x/cat.neti", -1, 2, false},
		{"cat.neti:trunc=-1", "", 0, 0, true},
		{"cat.neti:color=red", "", 0, 0, true},
		{"cat.neti:scale=abc", "", 0, 0, true},
	} {
		p, tr, sc, err := ParseConceptFlag(c.in)
		if c.bad != (err != nil) || !c.bad && (p != c.path || tr != c.trunc || sc != c.scale) {
			t.Errorf("%q: %q %d %g %v", c.in, p, tr, sc, err)
		}
	}
}

func TestPreparePrompt(t *testing.T) {
	cat := ConceptFile{Path: "concepts/cat.neti", Concept: &plugin.Concept{Token: "<cat>"}}
	hat := ConceptFile{Path: "hat-v2.neti", Concept: &plugin.Concept{Token: "<hat>"}}
	files := []ConceptFile{cat, hat}
	for _, c := range []struct {
		in, want string
		cat, hat float64
		missing  int
	}{
		{"a photo of <cat> wearing <hat>", "a photo of <cat> wearing <hat>", 1, 1, 0},
		{"a photo of cat wearing embedding:hat-v2", "a photo of <cat> wearing <hat>", 1, 1, 0},
		{"a photo of (<cat>:1.2) wearing [<hat>]", "a photo of <cat> wearing <hat>", 1.2, 1 / 1.1, 0},
		{"a (cat) and a concatenated word", "a <cat> and a concatenated word", 1.1, 1, 1},
		{"(a red dress:1.3) on <cat>", "(a red dress:1.3) on <cat>", 1, 1, 1},
	} {
		p, err := PreparePrompt(c.in, files)
		if err != nil {
			t.Fatal(err)
		}
		if p.Text != c.want || math.Abs(p.Strength["<cat>"]-c.cat) > 1e-12 || math.Abs(p.Strength["<hat>"]-c.hat) > 1e-12 || len(p.Missing) != c.missing {
			t.Errorf("%q -> %q %v missing %v", c.in, p.Text, p.Strength, p.Missing)
		}
	}
	dup := ConceptFile{Path: "other.neti", Concept: &plugin.Concept{Token: "<CAT>"}}
	if _, err := PreparePrompt("x", []ConceptFile{cat, dup}); err == nil {
		t.Error("trigger conflict accepted")
	}
}

func TestExpandEmbeddings(t *testing.T) {
	ids := []int{100, 5, 7, 6, 101, 0, 0}
	out, trunc := ExpandEmbeddings(ids, map[int]int{7: 3}, 101, 0)
	want := []int{100, 5, 7, 7, 7, 6, 101}
	if trunc || len(out) != len(want) {
		t.Fatalf("%v %v", out, trunc)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("%v", out)
		}
	}
	out, trunc = ExpandEmbeddings(ids, map[int]int{7: 9}, 101, 0)
	if !trunc || out[len(out)-1] != 101 || len(out) != 7 {
		t.Fatalf("%v %v", out, trunc)
	}
}
