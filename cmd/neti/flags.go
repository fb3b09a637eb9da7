package main

import (
	"errors"
	"io"

	"github.com/spf13/pflag"
)

// errHelp is returned when --help was asked for; the usage is already printed.
var errHelp = errors.New("help requested")

// newFlags makes a flag set for one subcommand that prints its usage to
// stderr and reports errors instead of exiting.
func newFlags(name, usageLine string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: neti "+name+" "+usageLine+"\n\nFlags:\n")
		io.WriteString(stderr, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses args, mapping --help to errHelp.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		return errHelp
	}
	return err
}
