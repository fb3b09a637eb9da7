package vk

/*
#include "nv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// Binding is a range of a buffer bound to one storage-buffer binding.
type Binding struct {
	Buf    *Buffer
	Offset int64 // a multiple of Info().MinStorageBufferOffsetAlignment
	Size   int64 // 0 = the rest of the buffer
}

// Timing is one timestamp of a Recording after a Submit.
type Timing struct {
	Label string
	Since time.Duration // since the recording's first timestamp
}

// Recording is one primary command buffer with the descriptor pools, query
// pools and fence it needs. Record once, End, then Submit as many times as
// needed; inputs may change between submits by writing the buffers. A
// Recording is used by one goroutine at a time; different Recordings may be
// recorded and submitted concurrently.
type Recording struct {
	d          *Device
	cmd        C.NvCmd
	state      recState
	pending    bool  // submitted but not known finished (after a timeout)
	err        error // first error of a method that cannot return one
	pools      []descPool
	queries    []C.VkQueryPool
	labels     []string // one per timestamp, in order
	dispatches int
	submits    int
	kernels    map[*Kernel]struct{}
	bufs       map[*Buffer]struct{}
	closed     atomic.Bool
	// scratch for descriptor writes, reused across dispatches
	wbufs   []C.VkBuffer
	woffs   []C.VkDeviceSize
	wranges []C.VkDeviceSize
}

type recState int

const (
	stateRecording recState = iota
	stateEnded
	stateFailed
)

type descPool struct {
	pool              C.VkDescriptorPool
	maxSets, maxDescs uint32
	sets, descs       uint32
}

const (
	firstPoolSets   = 64
	maxPoolSets     = 4096
	descsPerSet     = 8
	queriesPerPool  = 256
	maxQueryPools   = 4096 // a million timestamps
	computeStages   = C.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | C.VK_PIPELINE_STAGE_TRANSFER_BIT
	shaderAndXferRW = C.VK_ACCESS_SHADER_READ_BIT | C.VK_ACCESS_SHADER_WRITE_BIT |
		C.VK_ACCESS_TRANSFER_READ_BIT | C.VK_ACCESS_TRANSFER_WRITE_BIT
)

// NewRecording starts a recording.
func (d *Device) NewRecording() (*Recording, error) {
	if d.isClosed() {
		return nil, fmt.Errorf("vk: new recording: %w", errClosedDevice)
	}
	r := &Recording{d: d, kernels: map[*Kernel]struct{}{}, bufs: map[*Buffer]struct{}{}}
	if res := C.nv_create_cmd(d.dev, C.uint32_t(d.family), &r.cmd); res != C.VK_SUCCESS {
		return nil, fmt.Errorf("vk: new recording: %w", Result(res))
	}
	if res := C.nv_begin(r.cmd.cb, 0); res != C.VK_SUCCESS {
		C.nv_destroy_cmd(d.dev, &r.cmd)
		return nil, fmt.Errorf("vk: new recording: begin: %w", Result(res))
	}
	// Order this recording after whatever earlier submissions (other
	// recordings, uploads, fills) wrote.
	barrierBefore(r.cmd.cb, computeStages, shaderAndXferRW)
	if err := d.register(r); err != nil {
		r.release()
		return nil, fmt.Errorf("vk: new recording: %w", err)
	}
	return r, nil
}

// usable reports whether commands can still be recorded.
func (r *Recording) usable(op string) error {
	switch {
	case r.closed.Load():
		return fmt.Errorf("vk: %s: recording is closed", op)
	case r.err != nil:
		return r.err
	case r.state != stateRecording:
		return fmt.Errorf("vk: %s: recording has ended", op)
	}
	return nil
}

// fail keeps the first error of a method without an error result; End
// returns it.
func (r *Recording) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Dispatch records a dispatch of k over gx*gy*gz workgroups with the given
// bindings (one per kernel binding, in order) and push constants (exactly
// the kernel's PushSize bytes).
func (r *Recording) Dispatch(k *Kernel, b []Binding, push []byte, gx, gy, gz uint32) error {
	if err := r.usable("dispatch"); err != nil {
		return err
	}
	if k == nil || k.closed.Load() {
		return errors.New("vk: dispatch: kernel is nil or closed")
	}
	if k.d != r.d {
		return fmt.Errorf("vk: dispatch %s: the kernel belongs to another device", k.spec.label())
	}
	name := k.spec.label()
	if len(b) != k.spec.Bindings {
		return fmt.Errorf("vk: dispatch %s: %d bindings given, the kernel has %d", name, len(b), k.spec.Bindings)
	}
	if len(push) != k.spec.PushSize {
		return fmt.Errorf("vk: dispatch %s: %d bytes of push constants given, the kernel takes %d",
			name, len(push), k.spec.PushSize)
	}
	mc := r.d.info.MaxWorkgroupCount
	if gx > mc[0] || gy > mc[1] || gz > mc[2] {
		return fmt.Errorf("vk: dispatch %s: %d x %d x %d workgroups exceed the device's maximum %v",
			name, gx, gy, gz, mc)
	}
	r.wbufs, r.woffs, r.wranges = r.wbufs[:0], r.woffs[:0], r.wranges[:0]
	for i, bd := range b {
		rng, err := r.checkBinding(bd)
		if err != nil {
			return fmt.Errorf("vk: dispatch %s: binding %d: %w", name, i, err)
		}
		r.wbufs = append(r.wbufs, bd.Buf.buf)
		r.woffs = append(r.woffs, C.VkDeviceSize(bd.Offset))
		r.wranges = append(r.wranges, C.VkDeviceSize(rng))
	}
	var set C.VkDescriptorSet
	if len(b) > 0 {
		var err error
		if set, err = r.allocSet(k); err != nil {
			return fmt.Errorf("vk: dispatch %s: %w", name, err)
		}
		res := C.nv_write_set(r.d.dev, set, C.uint32_t(len(b)), &r.wbufs[0], &r.woffs[0], &r.wranges[0])
		if res != C.VK_SUCCESS {
			return fmt.Errorf("vk: dispatch %s: write descriptors: %w", name, Result(res))
		}
	}
	var pp unsafe.Pointer
	if len(push) > 0 {
		pp = unsafe.Pointer(&push[0])
	}
	C.nv_cmd_dispatch(r.cmd.cb, k.k.pipeline, k.k.layout, set, pp, C.uint32_t(len(push)),
		C.uint32_t(gx), C.uint32_t(gy), C.uint32_t(gz))
	r.kernels[k] = struct{}{}
	for _, bd := range b {
		r.bufs[bd.Buf] = struct{}{}
	}
	r.dispatches++
	return nil
}

// checkBinding validates a binding and returns its range in bytes.
func (r *Recording) checkBinding(bd Binding) (int64, error) {
	bf := bd.Buf
	switch {
	case bf == nil:
		return 0, errors.New("nil buffer")
	case bf.closed.Load():
		return 0, errors.New("buffer is closed")
	case bf.d != r.d:
		return 0, errors.New("buffer belongs to another device")
	}
	info := &r.d.info
	if bd.Offset < 0 || bd.Offset >= bf.size {
		return 0, fmt.Errorf("offset %d is outside the buffer of %d bytes", bd.Offset, bf.size)
	}
	if a := int64(info.MinStorageBufferOffsetAlignment); a > 1 && bd.Offset%a != 0 {
		return 0, fmt.Errorf("offset %d is not a multiple of minStorageBufferOffsetAlignment %d", bd.Offset, a)
	}
	size := bd.Size
	if size == 0 {
		size = bf.size - bd.Offset
	}
	if size < 0 || size > bf.size-bd.Offset {
		return 0, fmt.Errorf("range [%d, %d+%d) is outside the buffer of %d bytes", bd.Offset, bd.Offset, size, bf.size)
	}
	if uint64(size) > info.MaxStorageBufferRange {
		return 0, fmt.Errorf("range of %d bytes exceeds maxStorageBufferRange %d; split the tensor or bind a sub-range",
			size, info.MaxStorageBufferRange)
	}
	return size, nil
}

// allocSet takes a descriptor set from the current pool, adding a larger
// pool when it is full. Sets live as long as the recording.
func (r *Recording) allocSet(k *Kernel) (C.VkDescriptorSet, error) {
	need := uint32(k.spec.Bindings)
	if n := len(r.pools); n > 0 {
		p := &r.pools[n-1]
		if p.sets < p.maxSets && p.descs+need <= p.maxDescs {
			var set C.VkDescriptorSet
			res := C.nv_alloc_set(r.d.dev, p.pool, k.k.dsl, &set)
			if res == C.VK_SUCCESS {
				p.sets++
				p.descs += need
				return set, nil
			}
			if e := Result(res); e != errOutOfPoolMemory && e != errFragmentedPool {
				return 0, fmt.Errorf("allocate descriptor set: %w", Result(res))
			}
		}
	}
	sets := uint32(firstPoolSets)
	if n := len(r.pools); n > 0 {
		sets = min(2*r.pools[n-1].maxSets, maxPoolSets)
	}
	descs := sets * max(descsPerSet, need)
	var p descPool
	if res := C.nv_create_descriptor_pool(r.d.dev, C.uint32_t(sets), C.uint32_t(descs), &p.pool); res != C.VK_SUCCESS {
		return 0, fmt.Errorf("create descriptor pool: %w", Result(res))
	}
	p.maxSets, p.maxDescs = sets, descs
	r.pools = append(r.pools, p)
	var set C.VkDescriptorSet
	if res := C.nv_alloc_set(r.d.dev, p.pool, k.k.dsl, &set); res != C.VK_SUCCESS {
		return 0, fmt.Errorf("allocate descriptor set: %w", Result(res))
	}
	last := &r.pools[len(r.pools)-1]
	last.sets++
	last.descs += need
	return set, nil
}

// Barrier orders everything recorded before it (dispatches, copies, fills)
// before everything after it, and makes the writes visible.
func (r *Recording) Barrier() {
	if r.usable("barrier") != nil {
		return
	}
	barrierBefore(r.cmd.cb, computeStages, shaderAndXferRW)
}

// Copy records a buffer-to-buffer copy of size bytes. Errors are reported by
// End.
func (r *Recording) Copy(src *Buffer, srcOff int64, dst *Buffer, dstOff, size int64) {
	if err := r.usable("copy"); err != nil {
		r.fail(err)
		return
	}
	if err := src.checkRange("copy source", srcOff, size); err != nil {
		r.fail(err)
		return
	}
	if err := dst.checkRange("copy destination", dstOff, size); err != nil {
		r.fail(err)
		return
	}
	if src.d != r.d || dst.d != r.d {
		r.fail(errors.New("vk: copy: buffer belongs to another device"))
		return
	}
	if src == dst && srcOff < dstOff+size && dstOff < srcOff+size {
		r.fail(fmt.Errorf("vk: copy: source [%d, +%d) and destination [%d, +%d) overlap", srcOff, size, dstOff, size))
		return
	}
	if size == 0 {
		return
	}
	C.nv_cmd_copy(r.cmd.cb, src.buf, C.VkDeviceSize(srcOff), dst.buf, C.VkDeviceSize(dstOff), C.VkDeviceSize(size))
	r.bufs[src] = struct{}{}
	r.bufs[dst] = struct{}{}
}

// FillRange records a fill of size bytes at off with the 32-bit word (same
// rules as Buffer.Fill). Errors are reported by End.
func (r *Recording) FillRange(b *Buffer, off, size int64, word uint32) {
	if err := r.usable("fill"); err != nil {
		r.fail(err)
		return
	}
	fsize, err := b.fillRange(off, size)
	if err != nil {
		r.fail(err)
		return
	}
	if b.d != r.d {
		r.fail(errors.New("vk: fill: buffer belongs to another device"))
		return
	}
	if size == 0 {
		return
	}
	C.nv_cmd_fill(r.cmd.cb, b.buf, C.VkDeviceSize(off), fsize, C.uint32_t(word))
	r.bufs[b] = struct{}{}
}

// Timestamp records the time at which all earlier commands have finished.
// A no-op where the queue has no timestamps.
func (r *Recording) Timestamp(label string) {
	if !r.d.info.TimestampsSupported || r.usable("timestamp") != nil {
		return
	}
	n := len(r.labels)
	if n%queriesPerPool == 0 {
		if len(r.queries) >= maxQueryPools {
			r.fail(fmt.Errorf("vk: timestamp %q: more than %d timestamps in one recording", label, n))
			return
		}
		var qp C.VkQueryPool
		if res := C.nv_create_query_pool(r.d.dev, queriesPerPool, &qp); res != C.VK_SUCCESS {
			r.fail(fmt.Errorf("vk: timestamp %q: create query pool: %w", label, Result(res)))
			return
		}
		r.queries = append(r.queries, qp)
		// Reset inside the command buffer, so every Submit starts afresh.
		C.nv_cmd_reset_queries(r.cmd.cb, qp, 0, queriesPerPool)
	}
	C.nv_cmd_timestamp(r.cmd.cb, r.queries[n/queriesPerPool], C.uint32_t(n%queriesPerPool))
	r.labels = append(r.labels, label)
}

// End finishes recording: it adds a barrier that makes all writes visible to
// the host and to later transfers, and ends the command buffer. It returns
// the first error of Copy, FillRange or Timestamp, if any.
func (r *Recording) End() error {
	if r.closed.Load() {
		return errors.New("vk: end: recording is closed")
	}
	if r.state != stateRecording {
		return errors.New("vk: end: recording has already ended")
	}
	if r.err != nil {
		r.state = stateFailed
		return r.err
	}
	C.nv_cmd_barrier(r.cmd.cb, computeStages, C.VK_ACCESS_SHADER_WRITE_BIT|C.VK_ACCESS_TRANSFER_WRITE_BIT,
		C.VK_PIPELINE_STAGE_HOST_BIT|C.VK_PIPELINE_STAGE_TRANSFER_BIT,
		C.VK_ACCESS_HOST_READ_BIT|C.VK_ACCESS_TRANSFER_READ_BIT|C.VK_ACCESS_TRANSFER_WRITE_BIT)
	if res := C.nv_end(r.cmd.cb); res != C.VK_SUCCESS {
		r.state = stateFailed
		return fmt.Errorf("vk: end recording: %w", Result(res))
	}
	r.state = stateEnded
	return nil
}

// Submit runs the recording and waits for it to finish.
func (r *Recording) Submit() error {
	switch {
	case r.closed.Load():
		return errors.New("vk: submit: recording is closed")
	case r.state == stateRecording:
		return errors.New("vk: submit: End the recording first")
	case r.state == stateFailed:
		return errors.New("vk: submit: recording failed to end")
	}
	for k := range r.kernels {
		if k.closed.Load() {
			return fmt.Errorf("vk: submit: the recording uses %s, which is closed", k.spec.label())
		}
	}
	for b := range r.bufs {
		if b.closed.Load() {
			return fmt.Errorf("vk: submit: the recording uses a closed buffer of %d bytes", b.size)
		}
	}
	if r.pending {
		// A previous Submit timed out; the command buffer may still run.
		if err := r.d.wait(r.cmd.fence); err != nil {
			return fmt.Errorf("vk: submit: previous submission: %w", err)
		}
		r.pending = false
	}
	if err := r.d.submit(r.cmd.cb, r.cmd.fence); err != nil {
		return fmt.Errorf("vk: submit %d dispatches: %w", r.dispatches, err)
	}
	r.pending = true
	if err := r.d.wait(r.cmd.fence); err != nil {
		return fmt.Errorf("vk: submit %d dispatches: %w", r.dispatches, err)
	}
	r.pending = false
	r.submits++
	return nil
}

// Timings returns the timestamps of the last Submit, in recording order, as
// durations since the first one. Empty where timestamps are unsupported.
func (r *Recording) Timings() ([]Timing, error) {
	if r.closed.Load() {
		return nil, errors.New("vk: timings: recording is closed")
	}
	if r.submits == 0 {
		return nil, errors.New("vk: timings: the recording has not been submitted")
	}
	if len(r.labels) == 0 {
		return nil, nil
	}
	raw := make([]uint64, len(r.labels))
	for i, qp := range r.queries {
		first := i * queriesPerPool
		n := min(queriesPerPool, len(r.labels)-first)
		res := C.nv_query_results(r.d.dev, qp, 0, C.uint32_t(n), (*C.uint64_t)(unsafe.Pointer(&raw[first])))
		if res != C.VK_SUCCESS {
			return nil, fmt.Errorf("vk: timings: %w", Result(res))
		}
	}
	period := float64(r.d.info.TimestampPeriod)
	mask := r.d.tsMask
	t0 := raw[0] & mask
	out := make([]Timing, len(raw))
	for i, v := range raw {
		// Masked subtraction handles a counter that wrapped once.
		ticks := (v&mask - t0) & mask
		ns := math.Round(float64(ticks) * period)
		out[i] = Timing{Label: r.labels[i], Since: time.Duration(ns)}
	}
	return out, nil
}

// Dispatches is the number of dispatches recorded.
func (r *Recording) Dispatches() int { return r.dispatches }

func (r *Recording) describe() string {
	return fmt.Sprintf("Recording(%d dispatches)", r.dispatches)
}
func (r *Recording) order() int       { return 0 }
func (r *Recording) markClosed() bool { return r.closed.CompareAndSwap(false, true) }

func (r *Recording) release() {
	if r.pending {
		// Destroying a command buffer the device may still run is undefined;
		// wait once more, and leak it rather than crash if it never ends.
		if r.d.wait(r.cmd.fence) != nil {
			return
		}
		r.pending = false
	}
	for _, p := range r.pools {
		C.nv_destroy_descriptor_pool(r.d.dev, p.pool)
	}
	for _, q := range r.queries {
		C.nv_destroy_query_pool(r.d.dev, q)
	}
	C.nv_destroy_cmd(r.d.dev, &r.cmd)
	r.pools, r.queries, r.kernels, r.bufs = nil, nil, nil, nil
}

// Close releases the recording. Closing twice is a no-op.
func (r *Recording) Close() error {
	if r == nil || !r.d.unregister(r) {
		return nil
	}
	pending := r.pending
	r.release()
	if pending && r.pending {
		return errors.New("vk: close recording: the device never finished it; its resources were leaked")
	}
	return nil
}
