package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/neti-project/neti/model/sd"
)

// runModel dispatches `neti model <subcommand>`.
func runModel(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stderr, "Usage: neti model init --config %s --out DIR [--seed N]\n\nSubcommands:\n  init   write a diffusers folder with a known architecture and random weights (for benchmarks)\n", strings.Join(sd.Architectures, "|"))
		if len(args) == 0 {
			return errors.New("no subcommand")
		}
		return errHelp
	}
	switch args[0] {
	case "init":
		return runModelInit(args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q (want init)", args[0])
}

// runModelInit writes a full-size model with seeded random weights, so
// speed and memory can be measured at the real architecture's size
// without downloading weights. Its images are noise.
func runModelInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("model init", "--config NAME --out DIR [flags]", stderr)
	arch := fs.String("config", "sd15", "architecture: "+strings.Join(sd.Architectures, ", "))
	out := fs.StringP("out", "o", "", "folder to create (must not exist)")
	seed := fs.Uint64("seed", 0, "random seed of the weights (same seed, same files)")
	quiet := fs.BoolP("quiet", "q", false, "no notes on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errors.New("--out is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := sd.Architecture(*arch)
	if err != nil {
		return err
	}
	start := time.Now()
	if !*quiet {
		fmt.Fprintf(stderr, "writing %s with random float16 weights to %s ...\n", *arch, *out)
	}
	if err := sd.WriteRandom(*out, cfg, *seed); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(stderr, "done in %s\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintln(stdout, *out)
	return nil
}
