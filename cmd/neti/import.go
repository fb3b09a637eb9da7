package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/plugin/importer"
)

// runImport converts an official NeTI checkpoint or a textual-inversion
// embedding from another tool into a neti concept file.
func runImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", "SRC [--embeds learned_embeds-*.bin] [--token TOKEN] [--compact] -o OUT.neti", stderr)
	out := fs.StringP("output", "o", "", "concept file to write (required)")
	embeds := fs.String("embeds", "", "NeTI learned_embeds-*.bin saved with a mapper-*.pt, used as a cross-check")
	token := fs.String("token", "", "trigger token to use in prompts (default: the file's own, or its name)")
	compact := fs.Bool("compact", false, "write the small shareable form (quantised mapper, under 1% output change)")
	width := fs.Int("text-width", 0, "refuse a concept whose width differs from this text encoder hidden size (768 for SD 1.x)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give exactly one file to import")
	}
	if *out == "" {
		fs.Usage()
		return errors.New("no output file: pass -o OUT.neti")
	}
	src := fs.Arg(0)
	if same, err := importSameFile(src, *out); err != nil {
		return err
	} else if same {
		return fmt.Errorf("output %s is the input file", *out)
	}
	c, err := importer.Import(src, importer.Options{Embeds: *embeds, TextWidth: *width, Token: strings.TrimSpace(*token)})
	if err != nil {
		return err
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	c.Metadata["imported_by"] = "neti " + strings.TrimSpace(version)
	if err := plugin.Write(*out, c, plugin.EncodeOptions{Compact: *compact}); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	form := "full precision"
	if *compact {
		form = "compact"
	}
	what := fmt.Sprintf("NeTI mapper, width %d", c.Arch.TextWidth)
	if c.Kind == plugin.KindEmbedding {
		what = fmt.Sprintf("embedding, %d x %d", c.Embedding.Shape[0], c.Embedding.Shape[1])
	}
	fmt.Fprintf(stdout, "imported %s (%s, from %s) -> %s (%s, %s)\n",
		c.Token, what, c.Metadata["source_format"], *out, inspectSize(st.Size()), form)
	return nil
}

// importSameFile reports whether b already exists and is the file a, so an import
// never overwrites its own source.
func importSameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
