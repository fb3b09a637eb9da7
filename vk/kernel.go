package vk

/*
#include "nv.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// KernelSpec describes a compute shader and how it is bound.
type KernelSpec struct {
	Name  string // for errors and profiles
	SPIRV []byte // a SPIR-V module with entry point "main" (go:embed data is fine)
	// Bindings is the number of storage buffers the shader uses, bound as
	// bindings 0..Bindings-1 of descriptor set 0.
	Bindings int
	// PushSize is the size in bytes of the push-constant block (a multiple
	// of 4, at most Info().MaxPushConstants).
	PushSize int
	// Spec holds specialization constants constant_id 0..len-1, each 32
	// bits (math.Float32bits for floats).
	Spec []uint32
	// SpecIDs, when set, gives each Spec entry its constant_id instead
	// (same length as Spec, no repeats): constants a family of shaders
	// shares at a fixed id, away from each shader's own 0..n-1.
	SpecIDs []uint32
	// LocalSize is informational (for profiles and checks); zero if unknown.
	LocalSize [3]uint32
}

// Kernel is a compute pipeline with its descriptor set and pipeline layouts.
type Kernel struct {
	d        *Device
	spec     KernelSpec
	k        C.NvKernel
	fromDisk bool
	closed   atomic.Bool
}

const (
	spirvMagic   = 0x07230203
	maxSpecConst = 1024
)

func (s *KernelSpec) label() string {
	if s.Name == "" {
		return "kernel <unnamed>"
	}
	return fmt.Sprintf("kernel %q", s.Name)
}

// check validates the spec against the device limits.
func (s *KernelSpec) check(info *DeviceInfo) error {
	n := len(s.SPIRV)
	switch {
	case n < 20:
		return fmt.Errorf("vk: %s: SPIR-V of %d bytes is shorter than its 20-byte header", s.label(), n)
	case n%4 != 0:
		return fmt.Errorf("vk: %s: SPIR-V size %d is not a multiple of 4", s.label(), n)
	}
	if m := binary.NativeEndian.Uint32(s.SPIRV); m != spirvMagic {
		return fmt.Errorf("vk: %s: not SPIR-V (magic %#08x, want %#08x)", s.label(), m, spirvMagic)
	}
	if s.Bindings < 0 || uint64(s.Bindings) > uint64(info.MaxStorageBuffers) {
		return fmt.Errorf("vk: %s: %d bindings; the device allows 0 to %d storage buffers per kernel",
			s.label(), s.Bindings, info.MaxStorageBuffers)
	}
	if s.PushSize < 0 || s.PushSize%4 != 0 || uint64(s.PushSize) > uint64(info.MaxPushConstants) {
		return fmt.Errorf("vk: %s: push constant size %d must be a multiple of 4 in [0, %d] (the device's maxPushConstantsSize)",
			s.label(), s.PushSize, info.MaxPushConstants)
	}
	if len(s.Spec) > maxSpecConst {
		return fmt.Errorf("vk: %s: %d specialization constants (at most %d)", s.label(), len(s.Spec), maxSpecConst)
	}
	if s.SpecIDs != nil {
		if len(s.SpecIDs) != len(s.Spec) {
			return fmt.Errorf("vk: %s: %d specialization constant ids for %d constants", s.label(), len(s.SpecIDs), len(s.Spec))
		}
		seen := map[uint32]bool{}
		for _, id := range s.SpecIDs {
			if seen[id] {
				return fmt.Errorf("vk: %s: specialization constant id %d given twice", s.label(), id)
			}
			seen[id] = true
		}
	}
	if l := s.LocalSize; l != [3]uint32{} {
		inv := uint64(l[0]) * uint64(l[1]) * uint64(l[2])
		if inv == 0 || inv > uint64(info.MaxWorkgroupInvocations) ||
			l[0] > info.MaxWorkgroupSize[0] || l[1] > info.MaxWorkgroupSize[1] || l[2] > info.MaxWorkgroupSize[2] {
			return fmt.Errorf("vk: %s: local size %v exceeds the device's workgroup limits (size %v, %d invocations)",
				s.label(), l, info.MaxWorkgroupSize, info.MaxWorkgroupInvocations)
		}
	}
	return nil
}

// NewKernel builds a compute pipeline, through the device's pipeline cache.
func (d *Device) NewKernel(s KernelSpec) (*Kernel, error) {
	if d.isClosed() {
		return nil, fmt.Errorf("vk: %s: %w", s.label(), errClosedDevice)
	}
	if err := s.check(&d.info); err != nil {
		return nil, err
	}
	// go:embed data need not be 4-byte aligned; the driver wants uint32s.
	code := make([]uint32, len(s.SPIRV)/4)
	for i := range code {
		code[i] = binary.NativeEndian.Uint32(s.SPIRV[4*i:])
	}
	s.SPIRV = append([]byte(nil), s.SPIRV...)
	s.Spec = append([]uint32(nil), s.Spec...)
	var spec, ids *C.uint32_t
	if len(s.Spec) > 0 {
		spec = (*C.uint32_t)(unsafe.Pointer(&s.Spec[0]))
	}
	if s.SpecIDs != nil {
		s.SpecIDs = append([]uint32(nil), s.SpecIDs...)
		if len(s.SpecIDs) > 0 {
			ids = (*C.uint32_t)(unsafe.Pointer(&s.SpecIDs[0]))
		}
	}
	k := &Kernel{d: d, spec: s}
	d.cache.mu.RLock()
	r := C.nv_create_kernel(d.dev, d.cache.handle, (*C.uint32_t)(unsafe.Pointer(&code[0])), C.size_t(len(s.SPIRV)),
		C.uint32_t(s.Bindings), C.uint32_t(s.PushSize), spec, ids, C.uint32_t(len(s.Spec)), cbool(d.feedback), &k.k)
	d.cache.mu.RUnlock()
	if r != C.VK_SUCCESS {
		return nil, fmt.Errorf("vk: %s: create pipeline: %w", s.label(), Result(r))
	}
	if fb := uint32(k.k.feedback); fb&C.VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT != 0 && d.cache.handle != 0 {
		if fb&C.VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT != 0 {
			k.fromDisk = true
			d.cache.hits.Add(1)
		} else {
			d.cache.misses.Add(1)
		}
	}
	if err := d.register(k); err != nil {
		k.release()
		return nil, fmt.Errorf("vk: %s: %w", s.label(), err)
	}
	return k, nil
}

// Name is the spec's name.
func (k *Kernel) Name() string { return k.spec.Name }

// Spec returns the spec the kernel was made from.
func (k *Kernel) Spec() KernelSpec { return k.spec }

// CacheHit reports whether the driver said the pipeline came from the
// pipeline cache (false where the driver does not report it).
func (k *Kernel) CacheHit() bool { return k.fromDisk }

func (k *Kernel) describe() string { return "Kernel(" + k.spec.Name + ")" }
func (k *Kernel) order() int       { return 1 }
func (k *Kernel) markClosed() bool { return k.closed.CompareAndSwap(false, true) }
func (k *Kernel) release()         { C.nv_destroy_kernel(k.d.dev, &k.k) }

// Close destroys the pipeline. Recordings that use the kernel must not be
// submitted afterwards (Submit checks). Closing twice is a no-op.
func (k *Kernel) Close() error {
	if k == nil || !k.d.unregister(k) {
		return nil
	}
	k.release()
	return nil
}
