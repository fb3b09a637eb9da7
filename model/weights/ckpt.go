package weights

import (
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/neti-project/neti/internal/torchpickle"
	"github.com/neti-project/neti/model/safetensors"
)

// checkpointClasses are the non-tensor objects found next to the state
// dict in real SD .ckpt files (PyTorch Lightning callback state, numpy
// scalars). They load as inert torchpickle.Objects and are never used.
var checkpointClasses = []string{
	"pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
	"numpy.core.multiarray.scalar",
	"numpy.core.multiarray._reconstruct",
	"numpy.ndarray",
	"numpy.dtype",
	"_codecs.encode",
	"torch.nn.modules.container.ParameterDict",
}

// ckptStore is the state dict of a torch.save file, read lazily.
type ckptStore struct {
	path    string
	f       *os.File
	tensors map[string]*torchpickle.Tensor
	names   []string
}

// OpenCheckpoint opens a torch.save file holding a state dict: either the
// dict itself (diffusers' pytorch_model.bin) or a dict with a "state_dict"
// entry (Lightning .ckpt files). Tensors are read on demand.
func OpenCheckpoint(path string) (Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	v, err := torchpickle.LoadReader(f, st.Size(), torchpickle.Options{Lazy: true, AllowClasses: checkpointClasses})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("weights: %s: top level is %T, not a dict (not a state dict checkpoint)", path, v)
	}
	sd := top
	if inner, ok := top["state_dict"].(map[string]any); ok {
		sd = inner
	}
	s := &ckptStore{path: path, f: f, tensors: map[string]*torchpickle.Tensor{}}
	for k, v := range sd {
		if t, ok := v.(*torchpickle.Tensor); ok {
			if safetensors.DType(t.DType).Size() == 0 {
				f.Close()
				return nil, fmt.Errorf("weights: %s: tensor %q has unsupported dtype %s", path, k, t.DType)
			}
			s.tensors[k] = t
			s.names = append(s.names, k)
		}
	}
	if len(s.names) == 0 {
		f.Close()
		return nil, fmt.Errorf("weights: %s: no tensors in the state dict", path)
	}
	sort.Strings(s.names)
	return s, nil
}

func (s *ckptStore) Names() []string { return append([]string(nil), s.names...) }

func (s *ckptStore) Info(name string) (Info, bool) {
	t, ok := s.tensors[name]
	if !ok {
		return Info{}, false
	}
	return Info{Name: name, DType: safetensors.DType(t.DType), Shape: slices.Clone(t.Shape)}, true
}

func (s *ckptStore) Float32(name string) ([]float32, []int, error) {
	t, ok := s.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: %s: no tensor %q", s.path, name)
	}
	if s.f == nil {
		return nil, nil, fmt.Errorf("weights: %s: file is closed", s.path)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %s: tensor %q: %w", s.path, name, err)
	}
	return v, slices.Clone(t.Shape), nil
}

func (s *ckptStore) ReadRaw(name string, dst []byte) error {
	t, ok := s.tensors[name]
	if !ok {
		return fmt.Errorf("weights: %s: no tensor %q", s.path, name)
	}
	if s.f == nil {
		return fmt.Errorf("weights: %s: file is closed", s.path)
	}
	if err := t.ReadRaw(dst); err != nil {
		return fmt.Errorf("weights: %s: tensor %q: %w", s.path, name, err)
	}
	return nil
}

func (s *ckptStore) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
