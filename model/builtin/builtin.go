// Package builtin embeds the default model: sd-shapes, a tiny Stable
// Diffusion 1.x-architecture model trained on synthetic coloured shapes
// (our own data, 9 MB), so that `neti generate` works on a fresh machine
// with no download. Dir extracts it once to a cache folder, because the
// loaders read diffusers folders from disk.
package builtin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Name is the built-in model's name as shown to users.
const Name = "sd-shapes"

//go:embed all:sd-shapes
var files embed.FS

// FS returns the model folder as a file system (rooted at the folder).
func FS() fs.FS {
	sub, err := fs.Sub(files, Name)
	if err != nil { // cannot happen: the folder is embedded
		panic(err)
	}
	return sub
}

// Dir extracts the model below cacheRoot (default: the user cache dir)
// into a folder named by the content hash, so a new build's model never
// mixes with an old one, and returns the folder. Extraction writes to a
// temp folder and renames it, so a crash leaves no half model behind.
func Dir(cacheRoot string) (string, error) {
	if cacheRoot == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			c = os.TempDir()
		}
		cacheRoot = filepath.Join(c, "neti")
	}
	sum, err := hash()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(cacheRoot, "models", Name+"-"+sum[:12])
	if _, err := os.Stat(filepath.Join(dst, "model_index.json")); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("builtin: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".extract-*")
	if err != nil {
		return "", fmt.Errorf("builtin: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("builtin: extract %s: %w", Name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, statErr := os.Stat(filepath.Join(dst, "model_index.json")); statErr == nil {
			return dst, nil // another process extracted it first
		}
		return "", fmt.Errorf("builtin: %w", err)
	}
	return dst, nil
}

func hash() (string, error) {
	h := sha256.New()
	var paths []string
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	for _, p := range paths {
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
