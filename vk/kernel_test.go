package vk

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"testing"
)

func saxpyRef(a, scale float32, x, y []float32) []float32 {
	out := make([]float32, len(x))
	for i := range x {
		out[i] = a*scale*x[i] + y[i]
	}
	return out
}

func matmulRef(m, n, k int, a, b []float32) []float32 {
	c := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var acc float64
			for l := 0; l < k; l++ {
				acc += float64(a[i*k+l]) * float64(b[l*n+j])
			}
			c[i*n+j] = float32(acc)
		}
	}
	return c
}

func readFloats(t *testing.T, b *Buffer, n int) []float32 {
	t.Helper()
	raw := make([]byte, 4*n)
	if err := b.Read(0, raw); err != nil {
		t.Fatal(err)
	}
	return bytesF32(raw)
}

func writeFloats(t *testing.T, b *Buffer, v []float32) {
	t.Helper()
	if err := b.Write(0, f32bytes(v)); err != nil {
		t.Fatal(err)
	}
}

func TestSaxpy(t *testing.T) {
	d := sharedDevice(t)
	rng := newRand(t)
	tests := []struct {
		n     int
		local uint32
		scale float32
		a     float32
		ids   bool // pass the constants through SpecIDs
	}{
		{1, 64, 1, 2, false},
		{1000, 64, 0.5, -3, false},
		{4097, 128, 2, 0.25, false},
		{300, 32, -1.5, 1, true},
	}
	for _, tc := range tests {
		spec := saxpySpec(tc.local, tc.scale)
		if tc.ids {
			// The same constants given in reverse order with their ids.
			spec.Spec = []uint32{spec.Spec[1], spec.Spec[0]}
			spec.SpecIDs = []uint32{1, 0}
		}
		k := newKernel(t, d, spec)
		x, y := randFloats(rng, tc.n), randFloats(rng, tc.n)
		bx, by, bo := newBuffer(t, d, int64(4*tc.n)), newBuffer(t, d, int64(4*tc.n)), newBuffer(t, d, int64(4*tc.n))
		writeFloats(t, bx, x)
		writeFloats(t, by, y)
		push := u32bytes(uint32(tc.n), math.Float32bits(tc.a))
		err := d.Submit(func(r *Recording) error {
			return r.Dispatch(k, []Binding{{Buf: bx}, {Buf: by}, {Buf: bo}}, push, groups(tc.n, int(tc.local)), 1, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		got := readFloats(t, bo, tc.n)
		if e := relErr(got, saxpyRef(tc.a, tc.scale, x, y)); e > 1e-6 {
			t.Errorf("n=%d local=%d scale=%v: relative error %g", tc.n, tc.local, tc.scale, e)
		}
	}
}

func TestMatmul(t *testing.T) {
	d := sharedDevice(t)
	rng := newRand(t)
	tests := []struct{ m, n, k int }{
		{1, 1, 1},
		{17, 33, 9},
		{64, 48, 80},
	}
	for _, local := range [][2]uint32{{8, 8}, {16, 4}} {
		k := newKernel(t, d, matmulSpec(local[0], local[1]))
		for _, tc := range tests {
			a, b := randFloats(rng, tc.m*tc.k), randFloats(rng, tc.k*tc.n)
			ba, bb, bc := newBuffer(t, d, int64(4*len(a))), newBuffer(t, d, int64(4*len(b))), newBuffer(t, d, int64(4*tc.m*tc.n))
			writeFloats(t, ba, a)
			writeFloats(t, bb, b)
			push := u32bytes(uint32(tc.m), uint32(tc.n), uint32(tc.k))
			err := d.Submit(func(r *Recording) error {
				return r.Dispatch(k, []Binding{{Buf: ba}, {Buf: bb}, {Buf: bc}}, push,
					groups(tc.n, int(local[0])), groups(tc.m, int(local[1])), 1)
			})
			if err != nil {
				t.Fatal(err)
			}
			got := readFloats(t, bc, tc.m*tc.n)
			if e := relErr(got, matmulRef(tc.m, tc.n, tc.k, a, b)); e > 1e-6 {
				t.Errorf("%dx%dx%d local %v: relative error %g", tc.m, tc.n, tc.k, local, e)
			}
		}
	}
}

// TestSubmitMany records once and submits three times with new inputs.
func TestSubmitMany(t *testing.T) {
	d := sharedDevice(t)
	rng := newRand(t)
	const n = 777
	k := newKernel(t, d, saxpySpec(64, 1))
	bx, by, bo := newBuffer(t, d, 4*n), newBuffer(t, d, 4*n), newBuffer(t, d, 4*n)
	r := newRecording(t, d)
	const a = 1.5
	if err := r.Dispatch(k, []Binding{{Buf: bx}, {Buf: by}, {Buf: bo}}, u32bytes(n, math.Float32bits(a)), groups(n, 64), 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err == nil {
		t.Error("Submit before End succeeded")
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(k, []Binding{{Buf: bx}, {Buf: by}, {Buf: bo}}, u32bytes(n, 0), 1, 1, 1); err == nil {
		t.Error("Dispatch after End succeeded")
	}
	for i := 0; i < 3; i++ {
		x, y := randFloats(rng, n), randFloats(rng, n)
		writeFloats(t, bx, x)
		writeFloats(t, by, y)
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if e := relErr(readFloats(t, bo, n), saxpyRef(a, 1, x, y)); e > 1e-6 {
			t.Errorf("submit %d: relative error %g", i, e)
		}
	}
	if r.Dispatches() != 1 {
		t.Errorf("Dispatches() = %d", r.Dispatches())
	}
	// A closed buffer must stop the replay rather than run on freed memory.
	by.Close()
	if err := r.Submit(); err == nil || !strings.Contains(err.Error(), "closed buffer") {
		t.Errorf("Submit with a closed buffer: %v", err)
	}
}

// TestDispatchChain: many dependent dispatches with barriers in one
// recording, crossing several descriptor pools, with ranges of one arena.
func TestDispatchChain(t *testing.T) {
	d := sharedDevice(t)
	const n, steps = 300, 200
	align := int64(d.Info().MinStorageBufferOffsetAlignment)
	stride := (4*n + align - 1) / align * align
	arena := newBuffer(t, d, 2*stride)
	if err := arena.Fill(0, 2*stride, 0); err != nil {
		t.Fatal(err)
	}
	inc := newKernel(t, d, incSpec(1))
	dbl := newKernel(t, d, incSpec(2))
	r := newRecording(t, d)
	// Range 0: v = v + i for i in 1..steps. Range 1: v = 2v + 1, steps times.
	for i := 1; i <= steps; i++ {
		if err := r.Dispatch(inc, []Binding{{Buf: arena, Offset: 0, Size: 4 * n}}, u32bytes(n, uint32(i)), groups(n, 64), 1, 1); err != nil {
			t.Fatal(err)
		}
		if err := r.Dispatch(dbl, []Binding{{Buf: arena, Offset: stride}}, u32bytes(n, 1), groups(n, 64), 1, 1); err != nil {
			t.Fatal(err)
		}
		r.Barrier()
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if r.Dispatches() != 2*steps {
		t.Errorf("Dispatches() = %d", r.Dispatches())
	}
	if len(r.pools) < 2 {
		t.Errorf("%d dispatches used %d descriptor pools; the growth path was not exercised", 2*steps, len(r.pools))
	}
	raw := make([]byte, 2*stride)
	if err := arena.Read(0, raw); err != nil {
		t.Fatal(err)
	}
	const sum = steps * (steps + 1) / 2
	shift := steps
	want2 := uint32(1)<<shift - 1 // 2^steps - 1, mod 2^32
	for i := 0; i < n; i++ {
		if v := binary.LittleEndian.Uint32(raw[4*i:]); v != sum {
			t.Fatalf("range 0 element %d = %d, want %d", i, v, sum)
		}
		if v := binary.LittleEndian.Uint32(raw[stride+int64(4*i):]); v != want2 {
			t.Fatalf("range 1 element %d = %d, want %d", i, v, want2)
		}
	}
}

func TestTimestamps(t *testing.T) {
	d := sharedDevice(t)
	const n = 64
	k := newKernel(t, d, incSpec(1))
	buf := newBuffer(t, d, 4*n)
	r := newRecording(t, d)
	labels := []string{"start"}
	r.Timestamp("start")
	for i := 0; i < 300; i++ { // crosses a query pool boundary (256)
		if err := r.Dispatch(k, []Binding{{Buf: buf}}, u32bytes(n, 1), 1, 1, 1); err != nil {
			t.Fatal(err)
		}
		r.Barrier()
		r.Timestamp("inc")
		labels = append(labels, "inc")
	}
	if _, err := r.Timings(); err == nil {
		t.Error("Timings before Submit succeeded")
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		ts, err := r.Timings()
		if err != nil {
			t.Fatal(err)
		}
		if !d.Info().TimestampsSupported {
			if len(ts) != 0 {
				t.Errorf("timings without timestamp support: %v", ts)
			}
			return
		}
		if len(ts) != len(labels) {
			t.Fatalf("%d timings, want %d", len(ts), len(labels))
		}
		if ts[0].Since != 0 || ts[0].Label != "start" {
			t.Errorf("first timing %+v", ts[0])
		}
		for j := 1; j < len(ts); j++ {
			if ts[j].Since < ts[j-1].Since || ts[j].Label != labels[j] {
				t.Fatalf("timing %d %+v after %+v", j, ts[j], ts[j-1])
			}
		}
		if ts[len(ts)-1].Since <= 0 {
			t.Errorf("300 dispatches took %v", ts[len(ts)-1].Since)
		}
		t.Logf("submit %d: 300 dispatches in %v", i, ts[len(ts)-1].Since)
	}
}

func TestKernelErrors(t *testing.T) {
	d := sharedDevice(t)
	info := d.Info()
	bad := []struct {
		name string
		spec KernelSpec
		want string
	}{
		{"bad magic", KernelSpec{Name: "junk", SPIRV: []byte("this is not spir-v at all"[:24]), Bindings: 1}, `kernel "junk": not SPIR-V`},
		{"short", KernelSpec{Name: "short", SPIRV: saxpySPV[:8]}, "shorter than"},
		{"not words", KernelSpec{Name: "odd", SPIRV: saxpySPV[:len(saxpySPV)-1]}, "multiple of 4"},
		{"push too large", KernelSpec{Name: "p", SPIRV: saxpySPV, Bindings: 3, PushSize: int(info.MaxPushConstants) + 4}, "maxPushConstantsSize"},
		{"push unaligned", KernelSpec{Name: "p", SPIRV: saxpySPV, Bindings: 3, PushSize: 6}, "multiple of 4"},
		{"too many bindings", KernelSpec{Name: "b", SPIRV: saxpySPV, Bindings: int(info.MaxStorageBuffers) + 1}, "storage buffers"},
		{"spec ids", KernelSpec{Name: "s", SPIRV: saxpySPV, Bindings: 3, PushSize: 8, Spec: []uint32{64, 1}, SpecIDs: []uint32{0}}, "2 constants"},
		{"spec id twice", KernelSpec{Name: "s", SPIRV: saxpySPV, Bindings: 3, PushSize: 8, Spec: []uint32{64, 1}, SpecIDs: []uint32{0, 0}}, "given twice"},
		{"local size", KernelSpec{Name: "l", SPIRV: saxpySPV, Bindings: 3, PushSize: 8, LocalSize: [3]uint32{info.MaxWorkgroupInvocations + 1, 1, 1}}, "local size"},
	}
	for _, tc := range bad {
		k, err := d.NewKernel(tc.spec)
		if err == nil {
			k.Close()
			t.Errorf("%s: NewKernel succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want mention of %q", tc.name, err, tc.want)
		}
	}

	// Unaligned go:embed data is copied, not rejected.
	unaligned := append([]byte{0}, saxpySPV...)[1:]
	newKernel(t, d, KernelSpec{Name: "unaligned", SPIRV: unaligned, Bindings: 3, PushSize: 8, Spec: []uint32{64}})

	k := newKernel(t, d, saxpySpec(64, 1))
	buf := newBuffer(t, d, 1024)
	big := func() *Buffer {
		if info.MaxStorageBufferRange >= 1<<30 {
			return nil
		}
		return newBuffer(t, d, int64(info.MaxStorageBufferRange)+16)
	}()
	three := []Binding{{Buf: buf}, {Buf: buf}, {Buf: buf}}
	push := u32bytes(1, 0)
	r := newRecording(t, d)
	dispatches := []struct {
		name string
		b    []Binding
		push []byte
		g    [3]uint32
		want string
	}{
		{"push too short", three, push[:4], [3]uint32{1, 1, 1}, "push constants"},
		{"push too long", three, append(push, 0, 0, 0, 0), [3]uint32{1, 1, 1}, "push constants"},
		{"too few bindings", three[:2], push, [3]uint32{1, 1, 1}, "2 bindings given"},
		{"too many groups", three, push, [3]uint32{info.MaxWorkgroupCount[0] + 1, 1, 1}, "workgroups exceed"},
		{"nil buffer", []Binding{{}, {Buf: buf}, {Buf: buf}}, push, [3]uint32{1, 1, 1}, "nil buffer"},
		{"range past end", []Binding{{Buf: buf, Size: 2048}, {Buf: buf}, {Buf: buf}}, push, [3]uint32{1, 1, 1}, "outside the buffer"},
		{"offset past end", []Binding{{Buf: buf, Offset: 1024}, {Buf: buf}, {Buf: buf}}, push, [3]uint32{1, 1, 1}, "outside the buffer"},
	}
	if a := int64(info.MinStorageBufferOffsetAlignment); a > 1 {
		dispatches = append(dispatches, struct {
			name string
			b    []Binding
			push []byte
			g    [3]uint32
			want string
		}{"misaligned offset", []Binding{{Buf: buf, Offset: a / 2}, {Buf: buf}, {Buf: buf}}, push, [3]uint32{1, 1, 1}, "minStorageBufferOffsetAlignment"})
	}
	if big != nil {
		dispatches = append(dispatches, struct {
			name string
			b    []Binding
			push []byte
			g    [3]uint32
			want string
		}{"range over maxStorageBufferRange", []Binding{{Buf: big}, {Buf: buf}, {Buf: buf}}, push, [3]uint32{1, 1, 1}, "maxStorageBufferRange"})
	}
	for _, tc := range dispatches {
		err := r.Dispatch(k, tc.b, tc.push, tc.g[0], tc.g[1], tc.g[2])
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Dispatch error %v, want mention of %q", tc.name, err, tc.want)
		}
	}
	// Rejected dispatches leave the recording usable.
	if err := r.Dispatch(k, three, push, 1, 1, 1); err != nil {
		t.Errorf("valid dispatch after rejected ones: %v", err)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	k.Close()
	if err := r.Submit(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Submit with a closed kernel: %v", err)
	}
}

// TestConcurrentRecordings submits from several goroutines at once; run
// under -race it checks the queue lock and the message log.
func TestConcurrentRecordings(t *testing.T) {
	d := sharedDevice(t)
	k := newKernel(t, d, incSpec(1))
	const workers, n, rounds = 4, 256, 5
	var wg sync.WaitGroup
	errs := make([]error, workers)
	bufs := make([]*Buffer, workers)
	for w := range bufs {
		bufs[w] = newBuffer(t, d, 4*n)
		if err := bufs[w].Fill(0, 4*n, 0); err != nil {
			t.Fatal(err)
		}
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds && errs[w] == nil; i++ {
				errs[w] = d.Submit(func(r *Recording) error {
					return r.Dispatch(k, []Binding{{Buf: bufs[w]}}, u32bytes(n, uint32(w+1)), groups(n, 64), 1, 1)
				})
			}
		}(w)
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
		raw := make([]byte, 4*n)
		if err := bufs[w].Read(0, raw); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if v := binary.LittleEndian.Uint32(raw[4*i:]); v != uint32(rounds*(w+1)) {
				t.Fatalf("worker %d element %d = %d, want %d", w, i, v, rounds*(w+1))
			}
		}
	}
}
