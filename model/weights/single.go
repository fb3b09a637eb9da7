package weights

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/neti-project/neti/model/config"
)

// Key prefixes of the original CompVis/LDM single-file checkpoints.
const (
	ldmUNetPrefix    = "model.diffusion_model."
	ldmVAEPrefix     = "first_stage_model."
	ldmTextPrefix    = "cond_stage_model.transformer."
	ldmOpenCLIP      = "cond_stage_model.model."
	sdxlConditioner  = "conditioner.embedders."
	diffusersTextPre = "text_model."
)

// Configs are the component configs of one model.
type Configs struct {
	TextEncoder config.CLIPText
	UNet        config.UNet
	VAE         config.VAE
	Scheduler   config.Scheduler
}

// SD15Configs is the built-in SD 1.x config set used for single files.
func SD15Configs() Configs {
	return Configs{
		TextEncoder: config.SD15TextEncoder(),
		UNet:        config.SD15UNet(),
		VAE:         config.SD15VAE(),
		Scheduler:   config.SD15Scheduler(),
	}
}

// SingleFile is a single-file SD 1.x checkpoint, split into components
// whose tensors carry diffusers names and shapes.
type SingleFile struct {
	Path   string
	Config Configs
	// The component views; each can be closed on its own, and the file
	// closes when all of them (or the SingleFile) are closed.
	TextEncoder, UNet, VAE Store
	// Unmapped lists keys under the component prefixes that no rule maps
	// (extra tensors some trainers leave in); they are ignored.
	Unmapped []string
}

// Close closes the three component views, and so the file.
func (s *SingleFile) Close() error {
	var first error
	for _, c := range []Store{s.TextEncoder, s.UNet, s.VAE} {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OpenSingleFile opens an SD 1.x checkpoint (.safetensors or .ckpt with
// the original CompVis key names) with the built-in SD 1.x configs.
func OpenSingleFile(path string) (*SingleFile, error) {
	return OpenSingleFileWith(path, SD15Configs())
}

// OpenSingleFileWith opens a single-file checkpoint whose layout follows
// cfg instead of SD 1.x (same architecture family, other sizes). Every
// component is checked against cfg, so the stores hold exactly the
// tensors the models need, with the shapes they need.
func OpenSingleFileWith(path string, cfg Configs) (*SingleFile, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("weights: single-file checkpoint: %w", err)
	}
	base, err := Open(path)
	if err != nil {
		return nil, err
	}
	sf, err := splitLDM(base, cfg)
	if err != nil {
		base.Close()
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	sf.Path = path
	return sf, nil
}

func splitLDM(base Store, cfg Configs) (*SingleFile, error) {
	if err := cfg.UNet.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.VAE.Validate(); err != nil {
		return nil, err
	}
	text, unet, vae := map[string]mapping{}, map[string]mapping{}, map[string]mapping{}
	sf := &SingleFile{Config: cfg}
	add := func(m map[string]mapping, name, source string) error {
		if prev, dup := m[name]; dup {
			return fmt.Errorf("keys %s and %s both map to %s", prev.source, source, name)
		}
		in, _ := base.Info(source)
		m[name] = mapping{source: source, shape: squeezeShape(name, in.Shape)}
		return nil
	}
	for _, key := range base.Names() {
		switch {
		case strings.HasPrefix(key, ldmOpenCLIP):
			return nil, fmt.Errorf("key %s: an OpenCLIP text encoder (SD 2.x single file) is not supported; use a diffusers folder", key)
		case strings.HasPrefix(key, sdxlConditioner):
			return nil, fmt.Errorf("key %s: an SDXL checkpoint is not supported", key)
		case strings.HasPrefix(key, ldmTextPrefix):
			rest := strings.TrimPrefix(key, ldmTextPrefix)
			if !strings.HasPrefix(rest, diffusersTextPre) {
				rest = diffusersTextPre + rest // transformers < 4.x layout
			}
			if err := add(text, rest, key); err != nil {
				return nil, err
			}
		case strings.HasPrefix(key, ldmUNetPrefix):
			name, err := ldmUNetName(strings.TrimPrefix(key, ldmUNetPrefix), cfg.UNet)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			if name == "" {
				sf.Unmapped = append(sf.Unmapped, key)
				continue
			}
			if err := add(unet, name, key); err != nil {
				return nil, err
			}
		case strings.HasPrefix(key, ldmVAEPrefix):
			name, err := ldmVAEName(strings.TrimPrefix(key, ldmVAEPrefix), cfg.VAE)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			if name == "" {
				sf.Unmapped = append(sf.Unmapped, key)
				continue
			}
			if err := add(vae, name, key); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range []struct {
		what string
		m    map[string]mapping
	}{{"text encoder (" + ldmTextPrefix + "*)", text}, {"UNet (" + ldmUNetPrefix + "*)", unet}, {"VAE (" + ldmVAEPrefix + "*)", vae}} {
		if len(c.m) == 0 {
			return nil, fmt.Errorf("no %s keys: not an SD 1.x single-file checkpoint", c.what)
		}
	}
	shared := &sharedCloser{c: base}
	sf.TextEncoder = newMapped(base, text, shared.view())
	sf.UNet = newMapped(base, unet, shared.view())
	sf.VAE = newMapped(base, vae, shared.view())
	for _, c := range []struct {
		s      Store
		expect func() (Expect, error)
	}{
		{sf.TextEncoder, func() (Expect, error) { return ExpectCLIPText(cfg.TextEncoder) }},
		{sf.UNet, func() (Expect, error) { return ExpectUNet(cfg.UNet) }},
		{sf.VAE, func() (Expect, error) { return ExpectVAE(cfg.VAE) }},
	} {
		e, err := c.expect()
		if err == nil {
			err = e.Check(c.s)
		}
		if err != nil {
			sf.Close()
			return nil, err
		}
	}
	return sf, nil
}

// squeezeShape reads the VAE mid-block attention's 1×1 convolutions
// ([C, C, 1, 1] in LDM) as the Linear weights diffusers has ([C, C]).
func squeezeShape(name string, shape []int) []int {
	if !strings.Contains(name, ".mid_block.attentions.0.to_") || !strings.HasSuffix(name, ".weight") {
		return nil
	}
	if len(shape) == 4 && shape[2] == 1 && shape[3] == 1 {
		return []int{shape[0], shape[1]}
	}
	return nil
}

// split2 splits "a.b.rest" into a, b and rest.
func split2(s string) (a, b, rest string, ok bool) {
	a, r, ok1 := strings.Cut(s, ".")
	b, rest, ok2 := strings.Cut(r, ".")
	return a, b, rest, ok1 && ok2
}

func index(s string, limit int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= limit || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// renameParam replaces the leading module name of rest using table (for
// example in_layers.0.weight -> norm1.weight); ok is false when no entry
// matches.
func renameParam(rest string, table [][2]string) (string, bool) {
	for _, r := range table {
		if p, ok := strings.CutPrefix(rest, r[0]+"."); ok {
			return r[1] + "." + p, true
		}
	}
	return "", false
}

var ldmUNetResnet = [][2]string{
	{"in_layers.0", "norm1"}, {"in_layers.2", "conv1"}, {"emb_layers.1", "time_emb_proj"},
	{"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"},
}

var ldmVAEResnet = [][2]string{
	{"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"}, {"conv2", "conv2"}, {"nin_shortcut", "conv_shortcut"},
}

var ldmVAEAttention = [][2]string{
	{"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"},
}

// ldmUNetName maps a key below model.diffusion_model. to its diffusers
// name. LDM numbers the down path as one flat list input_blocks (conv_in,
// then per block: layers_per_block × [resnet, attention], then the
// downsampler) and the up path as output_blocks (per block:
// layers_per_block+1 × [resnet, attention, upsampler on the last]). An
// empty name means the key is not part of the model; an error means it
// does not fit the configured layout.
func ldmUNetName(rest string, c config.UNet) (string, error) {
	lpb, n := c.LayersPerBlock, len(c.BlockOutChannels)
	if p, ok := renameParam(rest, [][2]string{
		{"time_embed.0", "time_embedding.linear_1"}, {"time_embed.2", "time_embedding.linear_2"},
		{"out.0", "conv_norm_out"}, {"out.2", "conv_out"},
	}); ok {
		return p, nil
	}
	group, a, tail, ok := split2(rest)
	if !ok {
		return "", nil
	}
	layout := fmt.Errorf("does not fit the configured UNet (%d blocks of %d layers)", n, lpb)
	switch group {
	case "input_blocks":
		i, ok := index(a, 1+n*(lpb+1)-1)
		if !ok {
			return "", layout
		}
		j, param, ok := strings.Cut(tail, ".")
		if !ok {
			return "", layout
		}
		if i == 0 {
			if j != "0" {
				return "", layout
			}
			return "conv_in." + param, nil
		}
		b, l := (i-1)/(lpb+1), (i-1)%(lpb+1)
		switch {
		case l < lpb && j == "0":
			if p, ok := renameParam(param, ldmUNetResnet); ok {
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", b, l, p), nil
			}
		case l < lpb && j == "1" && c.DownBlockTypes[b] == config.CrossAttnDownBlock2D:
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", b, l, param), nil
		case l == lpb && j == "0" && b < n-1:
			if p, ok := strings.CutPrefix(param, "op."); ok {
				return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", b, p), nil
			}
		}
		return "", layout
	case "middle_block":
		j, ok := index(a, 3)
		if !ok {
			return "", layout
		}
		if j == 1 {
			return "mid_block.attentions.0." + tail, nil
		}
		if p, ok := renameParam(tail, ldmUNetResnet); ok {
			return fmt.Sprintf("mid_block.resnets.%d.%s", j/2, p), nil
		}
		return "", layout
	case "output_blocks":
		i, ok := index(a, n*(lpb+1))
		if !ok {
			return "", layout
		}
		u, l := i/(lpb+1), i%(lpb+1)
		j, param, ok := strings.Cut(tail, ".")
		if !ok {
			return "", layout
		}
		attn := c.UpBlockTypes[u] == config.CrossAttnUpBlock2D
		upsampler := "1"
		if attn {
			upsampler = "2"
		}
		switch {
		case j == "0":
			if p, ok := renameParam(param, ldmUNetResnet); ok {
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", u, l, p), nil
			}
		case j == "1" && attn:
			return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", u, l, param), nil
		case j == upsampler && l == lpb && u < n-1:
			if p, ok := strings.CutPrefix(param, "conv."); ok {
				return fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", u, p), nil
			}
		}
		return "", layout
	}
	return "", nil
}

// ldmVAEName maps a key below first_stage_model. to its diffusers name.
// LDM's decoder numbers its up blocks from the lowest resolution's
// opposite end: decoder.up.{i} is diffusers' up_blocks.{n-1-i}.
func ldmVAEName(rest string, c config.VAE) (string, error) {
	lpb, n := c.LayersPerBlock, len(c.BlockOutChannels)
	if p, ok := renameParam(rest, [][2]string{{"quant_conv", "quant_conv"}, {"post_quant_conv", "post_quant_conv"}}); ok {
		return p, nil
	}
	coder, tail, ok := strings.Cut(rest, ".")
	if !ok || (coder != "encoder" && coder != "decoder") {
		return "", nil
	}
	if p, ok := renameParam(tail, [][2]string{{"conv_in", "conv_in"}, {"conv_out", "conv_out"}, {"norm_out", "conv_norm_out"}}); ok {
		return coder + "." + p, nil
	}
	layout := fmt.Errorf("does not fit the configured VAE (%d blocks of %d layers)", n, lpb)
	group, a, tail, ok := split2(tail)
	if !ok {
		return "", nil
	}
	switch {
	case group == "mid":
		sub := a // block_1, block_2, attn_1
		switch sub {
		case "block_1", "block_2":
			if p, ok := renameParam(tail, ldmVAEResnet); ok {
				return fmt.Sprintf("%s.mid_block.resnets.%d.%s", coder, int(sub[6]-'1'), p), nil
			}
		case "attn_1":
			if p, ok := renameParam(tail, ldmVAEAttention); ok {
				return coder + ".mid_block.attentions.0." + p, nil
			}
		}
		return "", layout
	case group == "down" && coder == "encoder", group == "up" && coder == "decoder":
		b, ok := index(a, n)
		if !ok {
			return "", layout
		}
		kind, rest, _ := strings.Cut(tail, ".")
		blocks, target, layers, sampler := "down_blocks", b, lpb, "downsample"
		if coder == "decoder" {
			blocks, target, layers, sampler = "up_blocks", n-1-b, lpb+1, "upsample"
		}
		switch kind {
		case "block":
			l, param, _ := strings.Cut(rest, ".")
			li, ok := index(l, layers)
			if !ok {
				return "", layout
			}
			if p, ok := renameParam(param, ldmVAEResnet); ok {
				return fmt.Sprintf("%s.%s.%d.resnets.%d.%s", coder, blocks, target, li, p), nil
			}
		case sampler:
			if p, ok := strings.CutPrefix(rest, "conv."); ok && target < n-1 {
				samplers := "downsamplers"
				if coder == "decoder" {
					samplers = "upsamplers"
				}
				return fmt.Sprintf("%s.%s.%d.%s.0.conv.%s", coder, blocks, target, samplers, p), nil
			}
		}
		return "", layout
	}
	return "", nil
}
