package main

import (
	"fmt"
	"os"

	"github.com/neti-project/neti/model/builtin"
)

// defaultModelDir is the built-in sd-shapes model, extracted once to the
// user cache (NETI_CACHE_DIR overrides where).
func defaultModelDir() (string, error) {
	d, err := builtin.Dir(os.Getenv("NETI_CACHE_DIR"))
	if err != nil {
		return "", fmt.Errorf("built-in model %s: %w", builtin.Name, err)
	}
	return d, nil
}
