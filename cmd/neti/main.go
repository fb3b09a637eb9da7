// Command neti personalizes Stable Diffusion with NeTI concepts on any Vulkan
// device. Each subcommand lives in its own file as run<Name>(args, stdout,
// stderr); this file only dispatches.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"version", "print the version", runVersion},
		{"devices", "list Vulkan devices and their capabilities", runDevices},
		{"tokenize", "show how a prompt tokenizes", runTokenize},
		{"inspect", "show what a concept file holds", runInspect},
		{"train", "train a NeTI concept from a folder of images", runTrain},
		{"import", "convert a NeTI checkpoint or textual-inversion embedding to a concept file", runImport},
		{"generate", "generate images from a prompt", runGenerate},
		{"view", "interactive concept explorer: keys change truncation, seed, strength, concept", runView},
		{"model", "model tools: 'model init' writes a random-weight model for benchmarks", runModel},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(args[1:], stdout, stderr); err != nil {
				if err == errHelp {
					return 0
				}
				fmt.Fprintf(stderr, "neti %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "neti: unknown command %q (run 'neti help')\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "neti %s: NeTI personalization of Stable Diffusion on any Vulkan device\n\nUsage: neti <command> [flags]\n\nCommands:\n", version)
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'neti help <command>' for a command's flags.\n")
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "neti %s\n", strings.TrimSpace(version))
	return nil
}
