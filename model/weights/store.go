// Package weights finds and opens the tensors of a Stable Diffusion model:
// diffusers folders (safetensors, possibly sharded, or torch .bin files),
// and single-file checkpoints with the original CompVis/LDM names, whose
// keys are mapped to the diffusers names every model loader uses. It also
// checks a set of tensors against the shapes a config implies, reporting
// every problem at once.
package weights

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/neti-project/neti/model/safetensors"
)

// Info describes one tensor of a Store.
type Info struct {
	Name  string
	DType safetensors.DType
	Shape []int
}

// Numel is the number of elements.
func (i Info) Numel() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data.
func (i Info) Bytes() int64 { return int64(i.Numel()) * int64(i.DType.Size()) }

// Store is a named set of tensors. Implementations are safe for concurrent
// reads.
type Store interface {
	// Names lists the tensor names, sorted.
	Names() []string
	Info(name string) (Info, bool)
	// Float32 reads a floating-point tensor converted to float32.
	Float32(name string) ([]float32, []int, error)
	// ReadRaw reads a tensor's little-endian bytes into dst, which must be
	// exactly Info(name).Bytes() long.
	ReadRaw(name string, dst []byte) error
	Close() error
}

// maxIndexSize bounds a shard index file (a few hundred KB for real models).
const maxIndexSize = 64 << 20

// safetensorsStore is one safetensors file or the shards of one index.
type safetensorsStore struct {
	label string // path for messages
	files []*safetensors.File
	owner map[string]*safetensors.File
	names []string
}

// OpenSafetensors opens a .safetensors file, or all shards of a
// *.safetensors.index.json (diffusers / transformers sharding).
func OpenSafetensors(path string) (Store, error) {
	if strings.HasSuffix(path, ".json") {
		return openSharded(path)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	s := &safetensorsStore{label: path, files: []*safetensors.File{f}, owner: map[string]*safetensors.File{}}
	for _, n := range f.Names() {
		s.owner[n] = f
	}
	s.names = f.Names()
	return s, nil
}

func openSharded(path string) (Store, error) {
	b, err := readLimited(path, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("weights: shard index: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("weights: shard index %s: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("weights: shard index %s: empty or missing weight_map", path)
	}
	dir := filepath.Dir(path)
	s := &safetensorsStore{label: path, owner: map[string]*safetensors.File{}}
	shards := map[string]*safetensors.File{}
	// Open shards in a fixed order so errors are reproducible.
	tensorNames := make([]string, 0, len(idx.WeightMap))
	for n := range idx.WeightMap {
		tensorNames = append(tensorNames, n)
	}
	sort.Strings(tensorNames)
	for _, name := range tensorNames {
		shard := idx.WeightMap[name]
		if shard == "" || shard != filepath.Base(shard) || shard == ".." || shard == "." {
			s.Close()
			return nil, fmt.Errorf("weights: shard index %s: tensor %q: shard %q must be a file name in the same folder", path, name, shard)
		}
		f, ok := shards[shard]
		if !ok {
			f, err = safetensors.Open(filepath.Join(dir, shard))
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("weights: shard index %s: %w", path, err)
			}
			shards[shard] = f
			s.files = append(s.files, f)
		}
		if _, ok := f.Info(name); !ok {
			s.Close()
			return nil, fmt.Errorf("weights: shard index %s: tensor %q is not in shard %s", path, name, shard)
		}
		s.owner[name] = f
	}
	s.names = tensorNames
	return s, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

func (s *safetensorsStore) Names() []string { return append([]string(nil), s.names...) }

func (s *safetensorsStore) Info(name string) (Info, bool) {
	f, ok := s.owner[name]
	if !ok {
		return Info{}, false
	}
	t, _ := f.Info(name)
	return Info{Name: name, DType: t.DType, Shape: slices.Clone(t.Shape)}, true
}

func (s *safetensorsStore) Float32(name string) ([]float32, []int, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: %s: no tensor %q", s.label, name)
	}
	return f.Float32(name)
}

func (s *safetensorsStore) ReadRaw(name string, dst []byte) error {
	f, ok := s.owner[name]
	if !ok {
		return fmt.Errorf("weights: %s: no tensor %q", s.label, name)
	}
	return f.ReadRaw(name, dst)
}

func (s *safetensorsStore) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Prefixed is the view of the tensors of s whose names start with prefix,
// with the prefix removed. Closing the view does not close s.
func Prefixed(s Store, prefix string) Store {
	m := map[string]mapping{}
	for _, n := range s.Names() {
		if rest, ok := strings.CutPrefix(n, prefix); ok && rest != "" {
			m[rest] = mapping{source: n}
		}
	}
	return newMapped(s, m, nil)
}

// mapping says where a tensor of a mapped view comes from. A non-nil shape
// replaces the source's (same element count), as when a 1×1 convolution
// weight is read as a Linear weight.
type mapping struct {
	source string
	shape  []int
}

// mapped is a renaming view over another store.
type mapped struct {
	base   Store
	m      map[string]mapping
	names  []string
	closer func() error
}

func newMapped(base Store, m map[string]mapping, closer func() error) *mapped {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return &mapped{base: base, m: m, names: names, closer: closer}
}

func (v *mapped) Names() []string { return append([]string(nil), v.names...) }

func (v *mapped) Info(name string) (Info, bool) {
	mp, ok := v.m[name]
	if !ok {
		return Info{}, false
	}
	in, ok := v.base.Info(mp.source)
	if !ok {
		return Info{}, false
	}
	in.Name = name
	if mp.shape != nil {
		in.Shape = append([]int(nil), mp.shape...)
	}
	return in, true
}

func (v *mapped) Float32(name string) ([]float32, []int, error) {
	mp, ok := v.m[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: no tensor %q", name)
	}
	data, shape, err := v.base.Float32(mp.source)
	if err != nil {
		return nil, nil, err
	}
	if mp.shape != nil {
		shape = append([]int(nil), mp.shape...)
	}
	return data, shape, nil
}

func (v *mapped) ReadRaw(name string, dst []byte) error {
	mp, ok := v.m[name]
	if !ok {
		return fmt.Errorf("weights: no tensor %q", name)
	}
	return v.base.ReadRaw(mp.source, dst)
}

func (v *mapped) Close() error {
	if v.closer == nil {
		return nil
	}
	return v.closer()
}

// sharedCloser closes an underlying store once every view sharing it has
// been closed; each view's close counts once.
type sharedCloser struct {
	mu   sync.Mutex
	open int
	c    io.Closer
}

func (s *sharedCloser) view() func() error {
	s.mu.Lock()
	s.open++
	s.mu.Unlock()
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.open--
			if s.open == 0 {
				err = s.c.Close()
			}
		})
		return err
	}
}

// Open opens a weights file by its extension: .safetensors,
// .safetensors.index.json, or a torch file (.ckpt, .pt, .pth, .bin).
func Open(path string) (Store, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".safetensors", ".json":
		return OpenSafetensors(path)
	case ".ckpt", ".pt", ".pth", ".bin":
		return OpenCheckpoint(path)
	default:
		return nil, fmt.Errorf("weights: %s: unknown weights file type %q (want .safetensors, .ckpt, .pt, .pth or .bin)", path, ext)
	}
}
