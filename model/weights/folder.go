package weights

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/neti-project/neti/model/config"
)

// Components of a Stable Diffusion pipeline folder.
const (
	TextEncoder = "text_encoder"
	Tokenizer   = "tokenizer"
	UNet        = "unet"
	VAE         = "vae"
	Scheduler   = "scheduler"
)

// Folder is an opened diffusers Stable Diffusion folder: its configs are
// parsed and validated; weights are opened per component on demand.
type Folder struct {
	Root         string
	Index        config.ModelIndex // empty when the folder has no model_index.json
	TextEncoder  config.CLIPText
	UNet         config.UNet
	VAE          config.VAE
	Scheduler    config.Scheduler
	TokenizerDir string // holds vocab.json and merges.txt
}

// requiredFiles are the files OpenFolder insists on, per component.
var requiredFiles = []struct{ component, file string }{
	{TextEncoder, "config.json"},
	{Tokenizer, "vocab.json"},
	{Tokenizer, "merges.txt"},
	{UNet, "config.json"},
	{VAE, "config.json"},
	{Scheduler, "scheduler_config.json"},
}

// OpenFolder checks dir is a complete SD 1.x/2.x diffusers folder and
// parses its configs. Every missing component is named in one error.
func OpenFolder(dir string) (*Folder, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("weights: model folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("weights: model folder %s is a file, not a diffusers folder", dir)
	}
	var missing []string
	for _, r := range requiredFiles {
		p := filepath.Join(dir, r.component, r.file)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, r.component)); errors.Is(err, fs.ErrNotExist) {
				missing = appendOnce(missing, r.component+"/")
			} else {
				missing = append(missing, r.component+"/"+r.file)
			}
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("weights: %s is not a complete diffusers Stable Diffusion folder: missing %s", dir, strings.Join(missing, ", "))
	}
	f := &Folder{Root: dir, TokenizerDir: filepath.Join(dir, Tokenizer)}
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err == nil {
		if f.Index, err = config.LoadModelIndex(filepath.Join(dir, "model_index.json")); err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		if err := checkIndex(f.Index); err != nil {
			return nil, fmt.Errorf("weights: %s: %w", dir, err)
		}
	}
	if f.TextEncoder, err = config.LoadCLIPText(filepath.Join(dir, TextEncoder, "config.json")); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	if f.UNet, err = config.LoadUNet(filepath.Join(dir, UNet, "config.json")); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	if f.VAE, err = config.LoadVAE(filepath.Join(dir, VAE, "config.json")); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	if f.Scheduler, err = config.LoadScheduler(filepath.Join(dir, Scheduler, "scheduler_config.json")); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	if f.UNet.CrossAttentionDim != f.TextEncoder.HiddenSize {
		return nil, fmt.Errorf("weights: %s: unet cross_attention_dim %d does not match the text encoder's hidden_size %d",
			dir, f.UNet.CrossAttentionDim, f.TextEncoder.HiddenSize)
	}
	if f.UNet.InChannels != f.VAE.LatentChannels || f.UNet.OutChannels != f.VAE.LatentChannels {
		return nil, fmt.Errorf("weights: %s: unet in/out channels %d/%d do not match the vae's %d latent channels (inpainting and other variants are not supported)",
			dir, f.UNet.InChannels, f.UNet.OutChannels, f.VAE.LatentChannels)
	}
	return f, nil
}

func appendOnce(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

// checkIndex refuses pipelines whose components are not the SD 1.x/2.x
// classes (SDXL, for one, adds text_encoder_2).
func checkIndex(m config.ModelIndex) error {
	if _, ok := m.Components["text_encoder_2"]; ok {
		return fmt.Errorf("pipeline %s has a second text encoder (SDXL): not supported", m.ClassName)
	}
	want := map[string]string{TextEncoder: "CLIPTextModel", UNet: "UNet2DConditionModel", VAE: "AutoencoderKL"}
	for comp, class := range want {
		if c, ok := m.Components[comp]; ok && c.Class != class {
			return fmt.Errorf("model_index.json: %s is %s, want %s", comp, c.Class, class)
		}
	}
	return nil
}

// weightNames are the file names a component's weights may have, in order
// of preference: full precision before the fp16 variant, one file before
// shards, safetensors before torch pickles.
var weightNames = []string{
	"diffusion_pytorch_model.safetensors", "model.safetensors",
	"diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
	"diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json",
	"diffusion_pytorch_model.safetensors.index.fp16.json", "model.safetensors.index.fp16.json",
	"diffusion_pytorch_model.bin", "pytorch_model.bin",
	"diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin",
}

// WeightsPath finds the weights file of a component.
func (f *Folder) WeightsPath(component string) (string, error) {
	switch component {
	case TextEncoder, UNet, VAE:
	default:
		return "", fmt.Errorf("weights: unknown component %q (want text_encoder, unet or vae)", component)
	}
	dir := filepath.Join(f.Root, component)
	for _, n := range weightNames {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("weights: %s has no weights file (looked for %s)", dir, strings.Join(weightNames, ", "))
}

// Weights opens a component's tensors ("text_encoder", "unet" or "vae").
// VAE files in the older diffusers layout (mid-block attention named
// query/key/value/proj_attn) are presented with the current names.
func (f *Folder) Weights(component string) (Store, error) {
	p, err := f.WeightsPath(component)
	if err != nil {
		return nil, err
	}
	s, err := Open(p)
	if err != nil {
		return nil, err
	}
	if component == VAE {
		return renameLegacyVAE(s), nil
	}
	return s, nil
}

// Expect lists the tensors a component's weights must hold under this
// folder's configs.
func (f *Folder) Expect(component string) (Expect, error) {
	switch component {
	case TextEncoder:
		return ExpectCLIPText(f.TextEncoder)
	case UNet:
		return ExpectUNet(f.UNet)
	case VAE:
		return ExpectVAE(f.VAE)
	}
	return Expect{}, fmt.Errorf("weights: unknown component %q (want text_encoder, unet or vae)", component)
}

// legacyVAEAttention maps the older diffusers names of the VAE mid-block
// attention (still used by the public SD 1.x VAE files) to current ones.
var legacyVAEAttention = map[string]string{
	"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0",
}

func renameLegacyVAE(s Store) Store {
	m := map[string]mapping{}
	renamed := false
	for _, n := range s.Names() {
		target := n
		if pre, rest, ok := strings.Cut(n, ".mid_block.attentions.0."); ok {
			layer, param, _ := strings.Cut(rest, ".")
			if to, ok := legacyVAEAttention[layer]; ok {
				target = pre + ".mid_block.attentions.0." + to + "." + param
				if _, both := s.Info(target); both {
					continue // a file with both layouts: the current name wins
				}
				renamed = true
			}
		}
		m[target] = mapping{source: n}
	}
	if !renamed {
		return s
	}
	return newMapped(s, m, s.Close)
}
