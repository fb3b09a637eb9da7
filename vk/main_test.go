package vk

//go:generate sh testdata/gen.sh

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

var (
	//go:embed testdata/saxpy.spv
	saxpySPV []byte
	//go:embed testdata/matmul.spv
	matmulSPV []byte
	//go:embed testdata/inc.spv
	incSPV []byte
)

// shared is the one validating device most tests use; nil when the machine
// has no Vulkan (then sharedErr says why and the tests skip).
var (
	shared    *Device
	sharedErr error
)

func TestMain(m *testing.M) {
	d, err := NewDevice(Options{Validation: true, PipelineCacheDir: "-"})
	if err != nil {
		if !skippable(err) {
			fmt.Fprintln(os.Stderr, "vk tests:", err)
			os.Exit(1)
		}
		sharedErr = err
	}
	shared = d
	code := m.Run()
	if d != nil {
		if err := d.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "vk tests: close shared device:", err)
			code = max(code, 1)
		}
		for _, msg := range d.Messages() {
			fmt.Fprintln(os.Stderr, "vk tests: validation message at close:", msg)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// skippable: no Vulkan here and the run does not demand it.
func skippable(err error) bool {
	return (errors.Is(err, ErrNoVulkan) || errors.Is(err, ErrNoValidation)) && os.Getenv("REQUIRE_VULKAN") != "1"
}

// sharedDevice returns the shared device and fails the test on any
// validation message raised while it ran.
func sharedDevice(t *testing.T) *Device {
	t.Helper()
	if shared == nil {
		t.Skipf("no Vulkan device: %v", sharedErr)
	}
	shared.ClearMessages()
	t.Cleanup(func() { failOnMessages(t, shared) })
	return shared
}

func failOnMessages(t *testing.T, d *Device) {
	t.Helper()
	for _, m := range d.Messages() {
		t.Errorf("validation message: %v", m)
	}
	d.ClearMessages()
}

// newDevice opens a separate validating device, closed (and checked) when
// the test ends.
func newDevice(t *testing.T, opts Options) *Device {
	t.Helper()
	if shared == nil {
		t.Skipf("no Vulkan device: %v", sharedErr)
	}
	opts.Validation = true
	if opts.PipelineCacheDir == "" {
		opts.PipelineCacheDir = "-"
	}
	d, err := NewDevice(opts)
	if err != nil {
		t.Fatalf("NewDevice(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		failOnMessages(t, d)
	})
	return d
}

// newRand returns a freshly seeded generator and logs the seed, so a failure
// can be replayed.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0x6e657469))
}

func randFloats(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = r.Float32()*2 - 1
	}
	return out
}

func f32bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func bytesF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func u32bytes(v ...uint32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], x)
	}
	return out
}

// relErr is ||got-want|| / ||want|| (Frobenius).
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// newBuffer makes a buffer closed at the end of the test.
func newBuffer(t *testing.T, d *Device, size int64) *Buffer {
	t.Helper()
	b, err := d.NewBuffer(size)
	if err != nil {
		t.Fatalf("NewBuffer(%d): %v", size, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newKernel(t *testing.T, d *Device, s KernelSpec) *Kernel {
	t.Helper()
	k, err := d.NewKernel(s)
	if err != nil {
		t.Fatalf("NewKernel(%s): %v", s.Name, err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func newRecording(t *testing.T, d *Device) *Recording {
	t.Helper()
	r, err := d.NewRecording()
	if err != nil {
		t.Fatalf("NewRecording: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func saxpySpec(local uint32, scale float32) KernelSpec {
	return KernelSpec{Name: "saxpy", SPIRV: saxpySPV, Bindings: 3, PushSize: 8,
		Spec: []uint32{local, math.Float32bits(scale)}, LocalSize: [3]uint32{local, 1, 1}}
}

func matmulSpec(lx, ly uint32) KernelSpec {
	return KernelSpec{Name: "matmul", SPIRV: matmulSPV, Bindings: 3, PushSize: 12,
		Spec: []uint32{lx, ly}, LocalSize: [3]uint32{lx, ly, 1}}
}

func incSpec(mul uint32) KernelSpec {
	return KernelSpec{Name: "inc", SPIRV: incSPV, Bindings: 1, PushSize: 8, Spec: []uint32{mul},
		LocalSize: [3]uint32{64, 1, 1}}
}

func groups(n, local int) uint32 { return uint32((n + local - 1) / local) }
