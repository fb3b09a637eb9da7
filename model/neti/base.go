package neti

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/clip"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/tokenizer"
	"github.com/neti-project/neti/model/unet"
	"github.com/neti-project/neti/model/vae"
	"github.com/neti-project/neti/model/weights"
	"github.com/neti-project/neti/plugin"
)

// Base is a Stable Diffusion model as NeTI training needs it: configs,
// tokenizer, weights served to graph programs, the noise schedule.
type Base struct {
	Name      string
	Tokenizer *tokenizer.Tokenizer
	Text      clip.Config
	UNet      unet.Config
	VAE       vae.Config
	Tables    scheduler.Tables
	Scheduler scheduler.Config
	// UNetSampleSize is the latent side the UNet was trained at (0 if unknown).
	UNetSampleSize int
	// Weights serves text encoder (text_model.*) and UNet tensors by the
	// builders' names; VAEWeights the autoencoder's.
	Weights, VAEWeights graph.WeightSource
	stores              []weights.Store
}

// OpenBase opens a diffusers model folder.
func OpenBase(dir string) (*Base, error) {
	f, err := weights.OpenFolder(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer"))
	if err != nil {
		return nil, err
	}
	uc, err := unet.FromConfig(f.UNet)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "scheduler", "scheduler_config.json"))
	if err != nil {
		return nil, fmt.Errorf("neti: %w", err)
	}
	sc, err := scheduler.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("neti: %s: %w", dir, err)
	}
	tables, err := scheduler.NewTables(sc)
	if err != nil {
		return nil, err
	}
	b := &Base{Name: filepath.Base(filepath.Clean(dir)), Tokenizer: tok, Text: clip.FromConfig(f.TextEncoder), UNet: uc, VAE: vae.FromConfig(f.VAE), Tables: tables, Scheduler: sc, UNetSampleSize: f.UNet.SampleSize}
	stores := map[string]weights.Store{}
	for _, comp := range []string{"text_encoder", "unet", "vae"} {
		s, err := f.Weights(comp)
		if err != nil {
			b.Close()
			return nil, err
		}
		ex, err := f.Expect(comp)
		if err == nil {
			err = ex.Check(s)
		}
		if err != nil {
			s.Close()
			b.Close()
			return nil, err
		}
		stores[comp] = s
		b.stores = append(b.stores, s)
	}
	b.Weights = func(name string, shape []int) ([]float32, error) {
		s := stores["unet"]
		if strings.HasPrefix(name, "text_model.") {
			s = stores["text_encoder"]
		}
		return fromStore(s, name, shape)
	}
	b.VAEWeights = func(name string, shape []int) ([]float32, error) { return fromStore(stores["vae"], name, shape) }
	return b, nil
}

func fromStore(s weights.Store, name string, shape []int) ([]float32, error) {
	v, got, err := s.Float32(name)
	if err != nil {
		return nil, err
	}
	if fmt.Sprint(got) != fmt.Sprint(shape) {
		return nil, fmt.Errorf("%s: file has shape %v, the model needs %v", name, got, shape)
	}
	return v, nil
}

// Close releases the weight files.
func (b *Base) Close() error {
	var first error
	for _, s := range b.stores {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	b.stores = nil
	return first
}

// TokenEmbedding is row id of the text encoder's token table.
func (b *Base) TokenEmbedding(id int) ([]float32, error) {
	tab, err := b.Weights("text_model.embeddings.token_embedding.weight", []int{b.Text.Vocab, b.Text.Hidden})
	if err != nil {
		return nil, err
	}
	if id < 0 || id >= b.Text.Vocab {
		return nil, fmt.Errorf("neti: token id %d outside the %d-row embedding table", id, b.Text.Vocab)
	}
	return tab[id*b.Text.Hidden : (id+1)*b.Text.Hidden], nil
}

// Fingerprint identifies the text encoder a concept is made for: its width,
// depth, vocabulary and a hash of its token-embedding table (which differs
// between SD 1.x and 2.x and between fine-tunes of the text encoder).
func (b *Base) Fingerprint() (plugin.BaseModel, error) {
	tab, err := b.Weights("text_model.embeddings.token_embedding.weight", []int{b.Text.Vocab, b.Text.Hidden})
	if err != nil {
		return plugin.BaseModel{}, err
	}
	h := sha256.New()
	var buf [4]byte
	for _, v := range tab {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		h.Write(buf[:])
	}
	return plugin.BaseModel{TextWidth: b.Text.Hidden, TextLayers: b.Text.Layers, VocabSize: b.Text.Vocab, Hash: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}
