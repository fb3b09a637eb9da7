package graph

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/neti-project/neti/vk"
)

type attnShape struct {
	batch, nq, nk, heads, dh, dhv int
	causal                        bool
	offset                        int     // > 0: CausalAttention (nk = nq + offset)
	scale                         float32 // 0: 1/sqrt(dh)
}

// attend adds s's attention: CausalAttention when it has an offset.
func (s attnShape) attend(b *Builder, q, k, v *Tensor) *Tensor {
	if s.offset > 0 {
		return b.CausalAttention(q, k, v, s.heads, s.scale, s.offset)
	}
	return b.Attention(q, k, v, s.heads, s.scale, s.causal)
}

func attentionCase(s attnShape) opCase {
	return opCase{
		name: caseName("attention", s.batch, s.nq, s.nk, s.heads, s.dh, s.dhv, s.causal, s.offset, s.scale),
		build: func(b *Builder) {
			q := b.Input("q", s.batch, s.nq, s.heads*s.dh)
			k := b.Input("k", s.batch, s.nk, s.heads*s.dh)
			v := b.Input("v", s.batch, s.nk, s.heads*s.dhv)
			b.Output("y", s.attend(b, q, k, v))
		},
	}
}

func TestAttention(t *testing.T) {
	// Head dims are kept few and small where the shape is the point:
	// lavapipe compiles one pipeline per head-dim pair and layout, for
	// seconds at SD's sizes.
	for _, s := range []attnShape{
		// Tiny heads, single and odd sizes.
		{batch: 1, nq: 1, nk: 1, heads: 1, dh: 2, dhv: 2},
		{batch: 2, nq: 5, nk: 7, heads: 3, dh: 8, dhv: 8},
		{batch: 1, nq: 33, nk: 17, heads: 2, dh: 8, dhv: 8},
		{batch: 2, nq: 300, nk: 129, heads: 1, dh: 8, dhv: 8},
		{batch: 2, nq: 9, nk: 1, heads: 2, dh: 8, dhv: 8},
		// Value head dims that differ from the key's.
		{batch: 1, nq: 19, nk: 23, heads: 3, dh: 8, dhv: 3},
		// CLIP's causal self-attention, and causal cases spanning several
		// query and key blocks.
		{batch: 3, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true},
		{batch: 1, nq: 300, nk: 300, heads: 2, dh: 8, dhv: 8, causal: true},
		{batch: 1, nq: 1, nk: 1, heads: 1, dh: 2, dhv: 2, causal: true},
		// A prompt's suffix against its cached prefix (CausalAttention):
		// offsets inside and across key blocks, the last position alone,
		// and a suffix spanning several query blocks.
		{batch: 3, nq: 60, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true, offset: 17},
		{batch: 2, nq: 5, nk: 12, heads: 2, dh: 8, dhv: 8, causal: true, offset: 7},
		{batch: 1, nq: 1, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true, offset: 76},
		{batch: 1, nq: 270, nk: 300, heads: 2, dh: 8, dhv: 8, causal: true, offset: 30},
		// Cross-attention to 77 text tokens.
		{batch: 2, nq: 256, nk: 77, heads: 4, dh: 8, dhv: 8},
		// Peaked softmax: the running maximum moves by large steps.
		{batch: 1, nq: 64, nk: 200, heads: 2, dh: 8, dhv: 8, scale: 6},
		// SD 1.5's largest head dim on a 16x16 latent.
		{batch: 1, nq: 256, nk: 256, heads: 1, dh: 160, dhv: 160},
	} {
		c := attentionCase(s)
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
}

// forcedAttention records attention with a given thread layout, so that the
// layouts picked for other devices are tested on this one.
type forcedAttention struct {
	attentionOp
	cfg attnConfig
}

func (o forcedAttention) record(r *recorder, n *Node) error { return o.recordWith(r, n, o.cfg) }

// TestAttentionLayouts runs the shader's thread layouts whatever the test
// device would pick: the GPU ones (1, 2 or 4 threads per query, scores per
// block), the CPU ones (several queries per thread, online per key) and
// mixtures no device gets, with head dims that do not divide into lanes.
func TestAttentionLayouts(t *testing.T) {
	gpu := func(lanes int) attnConfig { return attnConfig{wg: 128, lanes: lanes, rq: 1} }
	for _, c := range []struct {
		cfg attnConfig
		s   attnShape
	}{
		{gpu(1), attnShape{batch: 1, nq: 300, nk: 300, heads: 1, dh: 8, dhv: 8, causal: true}},
		{gpu(2), attnShape{batch: 1, nq: 70, nk: 45, heads: 2, dh: 6, dhv: 9}},
		{gpu(4), attnShape{batch: 2, nq: 50, nk: 50, heads: 2, dh: 20, dhv: 13, causal: true}},
		{gpu(1), attnShape{batch: 2, nq: 150, nk: 170, heads: 2, dh: 8, dhv: 8, causal: true, offset: 20}},
		{gpu(2), attnShape{batch: 1, nq: 45, nk: 70, heads: 2, dh: 6, dhv: 9, causal: true, offset: 25}},
		{attnConfig{wg: 16, lanes: 1, rq: 4, perKey: true}, attnShape{batch: 1, nq: 70, nk: 33, heads: 2, dh: 8, dhv: 8}},
		{attnConfig{wg: 32, lanes: 2, rq: 2}, attnShape{batch: 1, nq: 150, nk: 40, heads: 2, dh: 6, dhv: 9}},
	} {
		oc := forceAttention(attentionCase(c.s), func(a attentionOp) Op { return forcedAttention{a, c.cfg} })
		oc.name = fmt.Sprintf("%s_wg%d_l%d_rq%d_pk%v", oc.name, c.cfg.wg, c.cfg.lanes, c.cfg.rq, c.cfg.perKey)
		t.Run(oc.name, func(t *testing.T) { runOpCase(t, oc) })
	}
}

// forceAttention makes an op case's attention nodes record through force.
func forceAttention(oc opCase, force func(attentionOp) Op) opCase {
	build := oc.build
	oc.build = func(b *Builder) {
		build(b)
		for _, n := range b.nodes {
			if a, ok := n.Op.(attentionOp); ok {
				n.Op = force(a)
			}
		}
	}
	return oc
}

// forcedAttentionCPU records attention with attention_cpu.comp and a given
// number of queries per lane, whatever attnCPUFor would pick.
type forcedAttentionCPU struct {
	attentionOp
	rq int
}

func (o forcedAttentionCPU) record(r *recorder, n *Node) error {
	c, ok := attnCPUFor(r.p.dev.Info(), o.nq, o.dh, o.dhv)
	if !ok {
		return fmt.Errorf("attention_cpu does not run on this device")
	}
	c.rq = o.rq
	return o.recordCPU(r, n, c)
}

// TestAttentionCPUKernel runs attention_cpu.comp with 1, 2 and 4 queries
// per lane: partial query and key blocks (fewer keys than a subgroup),
// causal masks with offsets across blocks, value head dims that differ
// from the key's, a peaked softmax and the largest head it is picked for.
func TestAttentionCPUKernel(t *testing.T) {
	if _, ok := attnCPUFor(device(t).Info(), 1, 8, 8); !ok {
		t.Skip("attention_cpu.comp needs subgroups of at most 16 with ballot")
	}
	for _, c := range []struct {
		rq int
		s  attnShape
	}{
		{1, attnShape{batch: 2, nq: 5, nk: 3, heads: 3, dh: 8, dhv: 8}},
		{1, attnShape{batch: 1, nq: 70, nk: 95, heads: 2, dh: 6, dhv: 9, causal: true, offset: 25}},
		{2, attnShape{batch: 2, nq: 37, nk: 77, heads: 2, dh: 32, dhv: 32}},
		{2, attnShape{batch: 3, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true}},
		{4, attnShape{batch: 1, nq: 100, nk: 130, heads: 2, dh: 5, dhv: 3, causal: true, offset: 30}},
		{4, attnShape{batch: 1, nq: 64, nk: 200, heads: 2, dh: 8, dhv: 8, scale: 6}},
		{1, attnShape{batch: 1, nq: 20, nk: 33, heads: 1, dh: 24, dhv: 40}},
	} {
		oc := forceAttention(attentionCase(c.s), func(a attentionOp) Op { return forcedAttentionCPU{a, c.rq} })
		oc.name = fmt.Sprintf("%s_rq%d", oc.name, c.rq)
		t.Run(oc.name, func(t *testing.T) { runOpCase(t, oc) })
	}
}

// TestAttentionKeysFromOtherTensors checks that k and v may be different
// tensors with different head dims (NeTI's bypass values) and that q may
// alias k (plain self-attention on one tensor).
func TestAttentionKeysFromOtherTensors(t *testing.T) {
	runOpCase(t, opCase{
		name: "attention_shared_qk",
		build: func(b *Builder) {
			x := b.Input("x", 2, 21, 3*8)
			v := b.Input("v", 2, 21, 3*3)
			b.Output("y", b.Attention(x, x, v, 3, 0, false))
			b.Output("z", b.Attention(x, x, x, 3, 0.5, true))
		},
	})
}

func TestAttentionShapeErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		q, k, v []int
		heads   int
		causal  bool
		wantMsg string
	}{
		{"rank", []int{2, 8}, []int{2, 8}, []int{2, 8}, 1, false, "rank-3"},
		{"heads do not divide", []int{1, 4, 10}, []int{1, 4, 10}, []int{1, 4, 10}, 3, false, "heads"},
		{"k width", []int{1, 4, 8}, []int{1, 4, 6}, []int{1, 4, 8}, 2, false, "heads"},
		{"v length", []int{1, 4, 8}, []int{1, 5, 8}, []int{1, 4, 8}, 2, false, "heads"},
		{"batch", []int{2, 4, 8}, []int{1, 4, 8}, []int{1, 4, 8}, 2, false, "heads"},
		{"head dim too large", []int{1, 4, 322}, []int{1, 4, 322}, []int{1, 4, 322}, 2, false, "exceeds"},
		{"causal needs square", []int{1, 4, 8}, []int{1, 5, 8}, []int{1, 5, 8}, 2, true, "causal"},
		{"offset keys", []int{1, 4, 8}, []int{1, 5, 8}, []int{1, 5, 8}, 2, true, "offset 2 needs 6 keys"},
		{"negative offset", []int{1, 4, 8}, []int{1, 3, 8}, []int{1, 3, 8}, 2, true, "offset -1"},
		{"zero heads", []int{1, 4, 8}, []int{1, 4, 8}, []int{1, 4, 8}, 0, false, "rank-3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := NewBuilder()
			q, k, v := b.Input("q", c.q...), b.Input("k", c.k...), b.Input("v", c.v...)
			var y *Tensor
			if o, ok := strings.CutPrefix(c.wantMsg, "offset "); ok {
				off, _ := strconv.Atoi(strings.Fields(o)[0])
				y = b.CausalAttention(q, k, v, c.heads, 0, off)
			} else {
				y = b.Attention(q, k, v, c.heads, 0, c.causal)
			}
			b.Output("y", y)
			_, err := b.Build()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not mention %q", err, c.wantMsg)
			}
		})
	}
}

// TestAttnConfig checks the thread layouts picked for every head dim the
// builder accepts against the shader's limits, on a GPU and on a CPU device
// with lavapipe's limits (32 KiB of shared memory).
func TestAttnConfig(t *testing.T) {
	for _, typ := range []string{"discrete", "cpu"} {
		info := vk.DeviceInfo{Type: typ, MaxSharedMemory: 32768, MaxWorkgroupInvocations: 1024, MaxWorkgroupSize: [3]uint32{1024, 1024, 64}}
		for dh := 1; dh <= MaxHeadDim; dh++ {
			for _, dhv := range []int{1, dh, MaxHeadDim + 1 - dh} {
				c := attnConfigFor(dh, dhv, info)
				if !c.valid(dh, dhv, info) {
					t.Fatalf("%s: attnConfigFor(%d, %d) = %+v is not valid", typ, dh, dhv, c)
				}
				// A GPU thread holds at most 16 vec4 chunks of q and of
				// the output per query.
				if typ != "cpu" && ceilDiv(ceilDiv(max(dh, dhv), 4), c.lanes)*c.rq > 16 {
					t.Fatalf("%s: attnConfigFor(%d, %d) = %+v gives a thread too much of the head", typ, dh, dhv, c)
				}
			}
		}
	}
	// attention_cpu.comp: lanes hold at most attnCPUFloats floats, and
	// a workgroup's last row of queries is never empty.
	cpu := vk.DeviceInfo{Type: "cpu", SubgroupSize: 8, SubgroupOps: []string{"basic", "ballot"}}
	for _, nq := range []int{1, 8, 9, 16, 17, 64, 256, 4096} {
		for dh := 1; dh <= MaxHeadDim; dh++ {
			c, ok := attnCPUFor(cpu, nq, dh, dh)
			if ok != (2*dh <= attnCPUHead) {
				t.Fatalf("attnCPUFor(nq %d, dh %d) ok = %v", nq, dh, ok)
			}
			if ok && (c.rq < 1 || c.rq > 1 && (c.rq*2*dh > attnCPUFloats || (c.rq-1)*c.sg >= nq)) {
				t.Fatalf("attnCPUFor(nq %d, dh %d) = %+v", nq, dh, c)
			}
		}
	}
	small := vk.DeviceInfo{MaxSharedMemory: 16384}
	if (attnConfig{wg: 128, lanes: 4, rq: 1}).valid(160, 160, small) {
		t.Error("a layout needing more shared memory than the device has was accepted")
	}
}
