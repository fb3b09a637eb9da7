package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

// `neti train --dry-run` prints the planned peaks with and without
// checkpointing and the mode's choice; bad modes and budgets are refused.
func TestTrainDryRunCheckpointing(t *testing.T) {
	tiny, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	star, err := fixtures.Path("sd-shapes", "concept-star")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string // in stdout, or in stderr when the run fails
		fails bool
	}{
		{"auto_small_budget", []string{"--memory-budget", "1MiB"},
			[]string{"planned peak without checkpointing", "planned peak with    checkpointing", "checkpointing: on (auto: the plan without it exceeds the budget of 1 MiB)"}, false},
		{"auto_large_budget", []string{"--memory-budget", "8GiB"},
			[]string{"checkpointing: off (auto: the plan fits the budget of 8.0 GiB)"}, false},
		{"forced_off", []string{"--checkpointing", "off", "--memory-budget", "1MiB"},
			[]string{"checkpointing: off (forced)"}, false},
		{"forced_on", []string{"--checkpointing", "on"},
			[]string{"checkpointing: on (forced)"}, false},
		{"bad_mode", []string{"--checkpointing", "sometimes"},
			[]string{"--checkpointing", "auto, on or off"}, true},
		{"bad_budget", []string{"--memory-budget", "lots"},
			[]string{"--memory-budget", "not a positive size"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"train", "-m", tiny, "--images", star, "--token", "<star>", "--init-token", "cat", "--dry-run"}, tc.flags...)
			rc := run(args, &stdout, &stderr)
			if (rc != 0) != tc.fails {
				t.Fatalf("exit %d: %s", rc, stderr.String())
			}
			out := stdout.String()
			if tc.fails {
				out = stderr.String()
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"8GiB", 8 << 30, false},
		{"8G", 8 << 30, false},
		{"8GB", 8e9, false},
		{"512 MiB", 512 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{"6000MB", 6e9, false},
		{"4096", 4096, false},
		{"100B", 100, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"-1G", 0, true},
		{"8TB", 0, true},
	} {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
