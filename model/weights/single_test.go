package weights

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/torchpickle/torchsavetest"
	"github.com/neti-project/neti/model/config"
	"github.com/neti-project/neti/model/safetensors"
)

// The test's own diffusers -> LDM mapping, written in the opposite
// direction from the code under test: it enumerates module prefixes from
// the config instead of parsing names.

type prefixPair struct{ diffusers, ldm string }

var (
	testUNetResnet = map[string]string{"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
		"norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
	testVAEResnet = map[string]string{"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
	testVAEAttn   = map[string]string{"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
)

func resnetPairs(d, l string, table map[string]string) []prefixPair {
	var out []prefixPair
	for a, b := range table {
		out = append(out, prefixPair{d + a + ".", l + b + "."})
	}
	return out
}

func unetPairs(c config.UNet) []prefixPair {
	ps := []prefixPair{{"conv_in.", "input_blocks.0.0."}, {"time_embedding.linear_1.", "time_embed.0."},
		{"time_embedding.linear_2.", "time_embed.2."}, {"conv_norm_out.", "out.0."}, {"conv_out.", "out.2."}}
	n, lpb := len(c.BlockOutChannels), c.LayersPerBlock
	idx := 1
	for b := range n {
		for l := range lpb {
			ps = append(ps, resnetPairs(fmt.Sprintf("down_blocks.%d.resnets.%d.", b, l), fmt.Sprintf("input_blocks.%d.0.", idx), testUNetResnet)...)
			ps = append(ps, prefixPair{fmt.Sprintf("down_blocks.%d.attentions.%d.", b, l), fmt.Sprintf("input_blocks.%d.1.", idx)})
			idx++
		}
		if b < n-1 {
			ps = append(ps, prefixPair{fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.", b), fmt.Sprintf("input_blocks.%d.0.op.", idx)})
			idx++
		}
	}
	ps = append(ps, resnetPairs("mid_block.resnets.0.", "middle_block.0.", testUNetResnet)...)
	ps = append(ps, prefixPair{"mid_block.attentions.0.", "middle_block.1."})
	ps = append(ps, resnetPairs("mid_block.resnets.1.", "middle_block.2.", testUNetResnet)...)
	idx = 0
	for u := range n {
		up := "1"
		if c.UpBlockTypes[u] == config.CrossAttnUpBlock2D {
			up = "2"
		}
		for l := range lpb + 1 {
			ps = append(ps, resnetPairs(fmt.Sprintf("up_blocks.%d.resnets.%d.", u, l), fmt.Sprintf("output_blocks.%d.0.", idx), testUNetResnet)...)
			ps = append(ps, prefixPair{fmt.Sprintf("up_blocks.%d.attentions.%d.", u, l), fmt.Sprintf("output_blocks.%d.1.", idx)})
			if l == lpb && u < n-1 {
				ps = append(ps, prefixPair{fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.", u), fmt.Sprintf("output_blocks.%d.%s.conv.", idx, up)})
			}
			idx++
		}
	}
	return ps
}

func vaePairs(c config.VAE) []prefixPair {
	ps := []prefixPair{{"quant_conv.", "quant_conv."}, {"post_quant_conv.", "post_quant_conv."}}
	n := len(c.BlockOutChannels)
	for _, coder := range []string{"encoder.", "decoder."} {
		ps = append(ps, prefixPair{coder + "conv_in.", coder + "conv_in."}, prefixPair{coder + "conv_out.", coder + "conv_out."},
			prefixPair{coder + "conv_norm_out.", coder + "norm_out."})
		ps = append(ps, resnetPairs(coder+"mid_block.resnets.0.", coder+"mid.block_1.", testVAEResnet)...)
		ps = append(ps, resnetPairs(coder+"mid_block.resnets.1.", coder+"mid.block_2.", testVAEResnet)...)
		ps = append(ps, resnetPairs(coder+"mid_block.attentions.0.", coder+"mid.attn_1.", testVAEAttn)...)
	}
	for b := range n {
		for l := range c.LayersPerBlock {
			ps = append(ps, resnetPairs(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.", b, l), fmt.Sprintf("encoder.down.%d.block.%d.", b, l), testVAEResnet)...)
		}
		for l := range c.LayersPerBlock + 1 {
			ps = append(ps, resnetPairs(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", b, l), fmt.Sprintf("decoder.up.%d.block.%d.", n-1-b, l), testVAEResnet)...)
		}
		if b < n-1 {
			ps = append(ps, prefixPair{fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv.", b), fmt.Sprintf("encoder.down.%d.downsample.conv.", b)},
				prefixPair{fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv.", b), fmt.Sprintf("decoder.up.%d.upsample.conv.", n-1-b)})
		}
	}
	return ps
}

// toLDM renames by the longest matching diffusers prefix.
func toLDM(t *testing.T, name string, pairs []prefixPair) string {
	t.Helper()
	best := -1
	for i, p := range pairs {
		if strings.HasPrefix(name, p.diffusers) && (best < 0 || len(p.diffusers) > len(pairs[best].diffusers)) {
			best = i
		}
	}
	if best < 0 {
		t.Fatalf("test mapping has no rule for %s", name)
	}
	return pairs[best].ldm + strings.TrimPrefix(name, pairs[best].diffusers)
}

type componentData map[string]map[string]safetensors.Tensor

// ldmCheckpoint builds the tensors of an LDM single file from a diffusers
// folder. oldText uses the transformers-3 text key layout.
func ldmCheckpoint(t *testing.T, f *Folder, oldText bool) (map[string]safetensors.Tensor, componentData) {
	t.Helper()
	orig := componentData{}
	out := map[string]safetensors.Tensor{}
	for _, comp := range components {
		s, err := f.Weights(comp)
		if err != nil {
			t.Fatal(err)
		}
		orig[comp] = readAll(t, s)
		s.Close()
		for name, v := range orig[comp] {
			var key string
			switch comp {
			case TextEncoder:
				rest := name
				if oldText {
					rest = strings.TrimPrefix(name, "text_model.")
				}
				key = ldmTextPrefix + rest
			case UNet:
				key = ldmUNetPrefix + toLDM(t, name, unetPairs(f.UNet))
			case VAE:
				key = ldmVAEPrefix + toLDM(t, name, vaePairs(f.VAE))
				if strings.Contains(name, "attentions.0.to_") && len(v.Shape) == 2 {
					v.Shape = []int{v.Shape[0], v.Shape[1], 1, 1}
				}
			}
			if _, dup := out[key]; dup {
				t.Fatalf("test mapping sends two tensors to %s", key)
			}
			out[key] = v
		}
	}
	// Keys real checkpoints carry besides the model.
	out["model_ema.decay"] = f32([]int{}, 0.9999)
	out["alphas_cumprod"] = f32([]int{2}, 0.9, 0.8)
	out[ldmUNetPrefix+"extra_head.weight"] = f32([]int{1}, 1)
	return out, orig
}

func writeCheckpoint(t *testing.T, path string, tensors map[string]safetensors.Tensor) {
	t.Helper()
	if strings.HasSuffix(path, ".safetensors") {
		writeStore(t, path, tensors)
		return
	}
	var entries []torchsavetest.Entry
	for _, n := range slices.Sorted(maps.Keys(tensors)) {
		v := tensors[n]
		entries = append(entries, torchsavetest.Entry{Name: n, DType: string(v.DType), Shape: v.Shape, Data: v.Data})
	}
	b, err := torchsavetest.StateDict("archive", entries, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func folderConfigs(f *Folder) Configs {
	return Configs{TextEncoder: f.TextEncoder, UNet: f.UNet, VAE: f.VAE, Scheduler: f.Scheduler}
}

func TestSingleFileRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		model, ext string
		oldText    bool
	}{
		{"sd-tiny", ".safetensors", false},
		{"sd-tiny", ".ckpt", true},
		{"sd-shapes", ".safetensors", true},
		{"sd-shapes", ".ckpt", false},
	} {
		t.Run(tc.model+tc.ext, func(t *testing.T) {
			f, err := OpenFolder(modelDir(t, tc.model))
			if err != nil {
				t.Fatal(err)
			}
			tensors, orig := ldmCheckpoint(t, f, tc.oldText)
			path := filepath.Join(t.TempDir(), "model"+tc.ext)
			writeCheckpoint(t, path, tensors)
			sf, err := OpenSingleFileWith(path, folderConfigs(f))
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			if !reflect.DeepEqual(sf.Unmapped, []string{ldmUNetPrefix + "extra_head.weight"}) {
				t.Errorf("Unmapped = %v", sf.Unmapped)
			}
			for comp, s := range map[string]Store{TextEncoder: sf.TextEncoder, UNet: sf.UNet, VAE: sf.VAE} {
				if got := readAll(t, s); !reflect.DeepEqual(got, orig[comp]) {
					missing := 0
					for n := range orig[comp] {
						if _, ok := got[n]; !ok {
							missing++
						}
					}
					t.Errorf("%s: round trip differs (%d of %d names missing, %d names in total)", comp, missing, len(orig[comp]), len(got))
				}
			}
			name := "decoder.mid_block.attentions.0.to_q.weight"
			v, shape, err := sf.VAE.Float32(name)
			want, _ := safetensors.ToFloat32(orig[VAE][name].DType, orig[VAE][name].Data)
			if err != nil || !reflect.DeepEqual(shape, orig[VAE][name].Shape) || !reflect.DeepEqual(v, want) {
				t.Errorf("Float32(%s): shape %v, err %v", name, shape, err)
			}
			// Views close independently; the file closes with the last.
			if err := sf.UNet.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := sf.TextEncoder.Float32("text_model.final_layer_norm.weight"); err != nil {
				t.Errorf("text encoder unreadable after closing the UNet view: %v", err)
			}
			if err := sf.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := sf.VAE.Float32(name); err == nil {
				t.Error("read after Close succeeded")
			}
		})
	}
}

// TestLDMNames pins keys of the public SD 1.5 checkpoint to their diffusers
// names under the built-in config.
func TestLDMNames(t *testing.T) {
	c := SD15Configs()
	unet := []struct{ ldm, want string }{
		{"input_blocks.0.0.weight", "conv_in.weight"},
		{"time_embed.2.bias", "time_embedding.linear_2.bias"},
		{"input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"},
		{"input_blocks.1.1.proj_in.weight", "down_blocks.0.attentions.0.proj_in.weight"},
		{"input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"},
		{"input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
		{"input_blocks.4.0.skip_connection.bias", "down_blocks.1.resnets.0.conv_shortcut.bias"},
		{"input_blocks.9.0.op.bias", "down_blocks.2.downsamplers.0.conv.bias"},
		{"input_blocks.11.0.emb_layers.1.weight", "down_blocks.3.resnets.1.time_emb_proj.weight"},
		{"middle_block.1.transformer_blocks.0.ff.net.0.proj.weight", "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"},
		{"middle_block.2.out_layers.3.weight", "mid_block.resnets.1.conv2.weight"},
		{"output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
		{"output_blocks.3.1.norm.weight", "up_blocks.1.attentions.0.norm.weight"},
		{"output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"},
		{"output_blocks.8.2.conv.weight", "up_blocks.2.upsamplers.0.conv.weight"},
		{"output_blocks.11.1.proj_out.weight", "up_blocks.3.attentions.2.proj_out.weight"},
		{"out.0.weight", "conv_norm_out.weight"},
		{"out.2.bias", "conv_out.bias"},
		{"label_emb.0.0.weight", ""},
	}
	for _, tc := range unet {
		if got, err := ldmUNetName(tc.ldm, c.UNet); err != nil || got != tc.want {
			t.Errorf("unet %s -> %q, %v; want %q", tc.ldm, got, err, tc.want)
		}
	}
	vae := []struct{ ldm, want string }{
		{"encoder.down.0.block.1.conv2.weight", "encoder.down_blocks.0.resnets.1.conv2.weight"},
		{"encoder.down.1.block.0.nin_shortcut.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
		{"encoder.down.2.downsample.conv.bias", "encoder.down_blocks.2.downsamplers.0.conv.bias"},
		{"encoder.mid.attn_1.q.weight", "encoder.mid_block.attentions.0.to_q.weight"},
		{"encoder.mid.attn_1.proj_out.bias", "encoder.mid_block.attentions.0.to_out.0.bias"},
		{"encoder.mid.attn_1.norm.weight", "encoder.mid_block.attentions.0.group_norm.weight"},
		{"encoder.norm_out.weight", "encoder.conv_norm_out.weight"},
		{"decoder.mid.block_2.norm1.bias", "decoder.mid_block.resnets.1.norm1.bias"},
		{"decoder.up.3.block.2.conv1.weight", "decoder.up_blocks.0.resnets.2.conv1.weight"},
		{"decoder.up.3.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight"},
		{"decoder.up.0.block.0.nin_shortcut.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"},
		{"post_quant_conv.weight", "post_quant_conv.weight"},
		{"loss.discriminator.main.0.weight", ""},
	}
	for _, tc := range vae {
		if got, err := ldmVAEName(tc.ldm, c.VAE); err != nil || got != tc.want {
			t.Errorf("vae %s -> %q, %v; want %q", tc.ldm, got, err, tc.want)
		}
	}
	for _, bad := range []string{"input_blocks.12.0.in_layers.0.weight", "input_blocks.12.0.op.weight", "input_blocks.10.1.proj_in.weight",
		"output_blocks.11.2.conv.weight", "output_blocks.0.1.norm.weight", "middle_block.3.in_layers.0.weight", "input_blocks.01.0.in_layers.0.weight"} {
		if got, err := ldmUNetName(bad, c.UNet); err == nil {
			t.Errorf("unet %s -> %q, want a layout error", bad, got)
		}
	}
	for _, bad := range []string{"encoder.down.4.block.0.conv1.weight", "decoder.up.0.upsample.conv.weight", "encoder.down.0.block.2.conv1.weight", "decoder.mid.attn_1.x.weight"} {
		if got, err := ldmVAEName(bad, c.VAE); err == nil {
			t.Errorf("vae %s -> %q, want a layout error", bad, got)
		}
	}
}

func TestSingleFileErrors(t *testing.T) {
	f, err := OpenFolder(modelDir(t, "sd-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := ldmCheckpoint(t, f, false)
	dir := t.TempDir()
	write := func(name string, edit func(map[string]safetensors.Tensor)) string {
		m := maps.Clone(base)
		edit(m)
		p := filepath.Join(dir, name)
		writeCheckpoint(t, p, m)
		return p
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"sd15 shapes", write("tiny.safetensors", func(map[string]safetensors.Tensor) {}),
			[]string{"weights: text_encoder:", "text_model.embeddings.token_embedding.weight: shape [1000 32], want [49408 768]", "... and"}},
		{"openclip", write("sd2.safetensors", func(m map[string]safetensors.Tensor) {
			m[ldmOpenCLIP+"positional_embedding"] = f32([]int{1}, 0)
		}), []string{"OpenCLIP"}},
		{"no vae", write("novae.safetensors", func(m map[string]safetensors.Tensor) {
			for k := range m {
				if strings.HasPrefix(k, ldmVAEPrefix) {
					delete(m, k)
				}
			}
		}), []string{"no VAE"}},
		{"layout", write("layout.safetensors", func(m map[string]safetensors.Tensor) {
			m[ldmUNetPrefix+"input_blocks.12.0.in_layers.0.weight"] = f32([]int{1}, 0)
		}), []string{"input_blocks.12", "4 blocks of 2 layers"}},
		{"duplicate", write("dup.safetensors", func(m map[string]safetensors.Tensor) {
			m[ldmTextPrefix+"final_layer_norm.weight"] = m[ldmTextPrefix+"text_model.final_layer_norm.weight"]
		}), []string{"both map to text_model.final_layer_norm.weight"}},
		{"missing tensor", write("missing.ckpt", func(m map[string]safetensors.Tensor) {
			delete(m, ldmUNetPrefix+"output_blocks.5.2.conv.weight")
		}), []string{"up_blocks.1.upsamplers.0.conv.weight: missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.name == "sd15 shapes" {
				_, err = OpenSingleFile(tc.path)
			} else {
				_, err = OpenSingleFileWith(tc.path, folderConfigs(f))
			}
			if err == nil {
				t.Fatal("opened, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := OpenSingleFile(filepath.Join(dir, "absent.ckpt")); err == nil || !strings.Contains(err.Error(), "absent.ckpt") {
		t.Errorf("absent file: %v", err)
	}
}

func FuzzLDMNames(f *testing.F) {
	for _, s := range []string{"input_blocks.11.0.emb_layers.1.weight", "output_blocks.5.2.conv.bias", "middle_block.1.norm.weight",
		"decoder.up.3.upsample.conv.weight", "encoder.mid.attn_1.q.weight", "time_embed.0.weight", "input_blocks.3.0.op.weight"} {
		f.Add(s)
	}
	sd15, shapes := SD15Configs(), SD15Configs()
	shapes.VAE.BlockOutChannels, shapes.VAE.DownBlockTypes, shapes.VAE.UpBlockTypes = []int{32}, []string{"DownEncoderBlock2D"}, []string{"UpDecoderBlock2D"}
	shapes.UNet.LayersPerBlock = 1
	f.Fuzz(func(t *testing.T, key string) {
		for _, c := range []Configs{sd15, shapes} {
			// Any key gives a name, nothing, or an error; never a panic.
			_, _ = ldmUNetName(key, c.UNet)
			_, _ = ldmVAEName(key, c.VAE)
		}
	})
}
