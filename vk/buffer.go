package vk

/*
#include "nv.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Buffer is a device-local storage buffer (usage STORAGE, TRANSFER_SRC and
// TRANSFER_DST) with its own memory allocation. On unified-memory devices it
// is mapped persistently and Write/Read are plain copies; elsewhere they go
// through the Device's staging ring.
type Buffer struct {
	d      *Device
	size   int64
	buf    C.VkBuffer
	mem    C.VkDeviceMemory
	mapped []byte // C memory; nil when not host-visible
	closed atomic.Bool
}

// NewBuffer allocates a buffer of size bytes. Its contents are undefined
// until written or filled.
func (d *Device) NewBuffer(size int64) (*Buffer, error) {
	if d.isClosed() {
		return nil, fmt.Errorf("vk: new buffer of %d bytes: %w", size, errClosedDevice)
	}
	if size <= 0 {
		return nil, fmt.Errorf("vk: new buffer: size %d must be positive", size)
	}
	if uint64(size) > d.info.MaxAllocation {
		return nil, fmt.Errorf("vk: new buffer: %d bytes exceeds the device's largest allocation (maxMemoryAllocationSize %d bytes); split the tensor",
			size, d.info.MaxAllocation)
	}
	if uint64(size) > d.info.MaxBufferSize {
		return nil, fmt.Errorf("vk: new buffer: %d bytes exceeds the device's maxBufferSize %d bytes; split the tensor",
			size, d.info.MaxBufferSize)
	}
	// Vulkan fills and copies in 4-byte words; padding lets Fill and whole
	// buffer bindings cover an odd-sized tail.
	vkSize := (size + 3) &^ 3
	b := &Buffer{d: d, size: size}
	var req C.VkMemoryRequirements
	if r := C.nv_create_buffer(d.dev, C.VkDeviceSize(vkSize), &b.buf, &req); r != C.VK_SUCCESS {
		return nil, fmt.Errorf("vk: new buffer of %d bytes: %w", size, Result(r))
	}
	if uint64(req.size) > d.info.MaxAllocation {
		C.nv_destroy_buffer(d.dev, b.buf, 0)
		return nil, fmt.Errorf("vk: new buffer: %d bytes need an allocation of %d bytes, over maxMemoryAllocationSize %d bytes",
			size, uint64(req.size), d.info.MaxAllocation)
	}
	bits := uint32(req.memoryTypeBits)
	typ := -1
	if d.mapBuffers {
		typ = d.mem.unifiedType(bits)
	}
	mapIt := typ >= 0
	if typ < 0 {
		typ = d.mem.deviceType(bits)
	}
	if typ < 0 {
		C.nv_destroy_buffer(d.dev, b.buf, 0)
		return nil, fmt.Errorf("vk: new buffer of %d bytes: no memory type fits (type bits %#x)", size, bits)
	}
	var ptr unsafe.Pointer
	var mapPtr *unsafe.Pointer
	if mapIt {
		mapPtr = &ptr
	}
	if r := C.nv_alloc_bind(d.dev, b.buf, req.size, C.uint32_t(typ), &b.mem, mapPtr); r != C.VK_SUCCESS {
		C.nv_destroy_buffer(d.dev, b.buf, 0)
		return nil, fmt.Errorf("vk: new buffer: allocate %d bytes of device memory (type %d): %w",
			uint64(req.size), typ, Result(r))
	}
	if mapIt {
		b.mapped = unsafe.Slice((*byte)(ptr), size)
	}
	if err := d.register(b); err != nil {
		b.release()
		return nil, fmt.Errorf("vk: new buffer of %d bytes: %w", size, err)
	}
	return b, nil
}

// NewArena allocates one large buffer for the executor to sub-allocate; a
// graph binds ranges of it with offsets that are multiples of
// Info().MinStorageBufferOffsetAlignment.
func (d *Device) NewArena(size int64) (*Buffer, error) { return d.NewBuffer(size) }

// Size is the size in bytes asked for at creation.
func (b *Buffer) Size() int64 { return b.size }

// HostVisible reports whether the buffer is mapped, so Write and Read are
// plain memory copies.
func (b *Buffer) HostVisible() bool { return b.mapped != nil }

func (b *Buffer) describe() string { return fmt.Sprintf("Buffer(%d bytes)", b.size) }
func (b *Buffer) order() int       { return 2 }
func (b *Buffer) markClosed() bool { return b.closed.CompareAndSwap(false, true) }

func (b *Buffer) release() {
	C.nv_destroy_buffer(b.d.dev, b.buf, b.mem)
	b.buf, b.mem, b.mapped = 0, 0, nil
}

// Close frees the buffer. Closing twice, or after the Device, is a no-op.
func (b *Buffer) Close() error {
	if b == nil || !b.d.unregister(b) {
		return nil
	}
	b.release()
	return nil
}

// checkRange validates [off, off+n) against the buffer.
func (b *Buffer) checkRange(op string, off, n int64) error {
	if b == nil {
		return fmt.Errorf("vk: %s: nil buffer", op)
	}
	if b.closed.Load() {
		return fmt.Errorf("vk: %s: buffer is closed", op)
	}
	if off < 0 || n < 0 || off > b.size || n > b.size-off {
		return fmt.Errorf("vk: %s: range [%d, %d+%d) is outside the buffer of %d bytes", op, off, off, n, b.size)
	}
	return nil
}

// Write copies data into the buffer at offset. It must not overlap a
// Submit that uses the buffer.
func (b *Buffer) Write(offset int64, data []byte) error {
	if err := b.checkRange("write", offset, int64(len(data))); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if b.mapped != nil {
		copy(b.mapped[offset:], data)
		return nil
	}
	return b.d.xfer.write(b.d, b, offset, data)
}

// Read copies len(dst) bytes from the buffer at offset into dst.
func (b *Buffer) Read(offset int64, dst []byte) error {
	if err := b.checkRange("read", offset, int64(len(dst))); err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	if b.mapped != nil {
		copy(dst, b.mapped[offset:])
		return nil
	}
	return b.d.xfer.read(b.d, b, offset, dst)
}

// Fill sets size bytes at offset to the repeated 32-bit word (vkCmdFillBuffer)
// and waits. offset must be a multiple of 4; size too, unless the range ends
// at the end of the buffer.
func (b *Buffer) Fill(offset, size int64, word uint32) error {
	fsize, err := b.fillRange(offset, size)
	if err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	return b.d.xfer.oneShot(b.d, func(cb C.VkCommandBuffer) {
		barrierBefore(cb, C.VK_PIPELINE_STAGE_TRANSFER_BIT, C.VK_ACCESS_TRANSFER_WRITE_BIT)
		C.nv_cmd_fill(cb, b.buf, C.VkDeviceSize(offset), fsize, C.uint32_t(word))
		barrierAfterTransfer(cb)
	})
}

// fillRange validates a fill and returns the size to pass to Vulkan.
func (b *Buffer) fillRange(offset, size int64) (C.VkDeviceSize, error) {
	if err := b.checkRange("fill", offset, size); err != nil {
		return 0, err
	}
	if offset%4 != 0 {
		return 0, fmt.Errorf("vk: fill: offset %d is not a multiple of 4", offset)
	}
	if size%4 != 0 {
		if offset+size != b.size {
			return 0, fmt.Errorf("vk: fill: size %d is not a multiple of 4 and does not reach the end of the buffer", size)
		}
		// The padded tail of the buffer absorbs the rest of the last word.
		return C.VK_WHOLE_SIZE, nil
	}
	return C.VkDeviceSize(size), nil
}

// barrierBefore makes earlier compute and transfer writes (of this or
// earlier submissions) visible to, and ordered before, the next command.
func barrierBefore(cb C.VkCommandBuffer, dstStage C.VkPipelineStageFlags, dstAccess C.VkAccessFlags) {
	C.nv_cmd_barrier(cb,
		C.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT|C.VK_PIPELINE_STAGE_TRANSFER_BIT,
		C.VK_ACCESS_SHADER_WRITE_BIT|C.VK_ACCESS_TRANSFER_WRITE_BIT,
		dstStage, dstAccess)
}

// barrierAfterTransfer makes a transfer's writes visible to later shaders,
// transfers and the host.
func barrierAfterTransfer(cb C.VkCommandBuffer) {
	C.nv_cmd_barrier(cb,
		C.VK_PIPELINE_STAGE_TRANSFER_BIT, C.VK_ACCESS_TRANSFER_WRITE_BIT,
		C.VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT|C.VK_PIPELINE_STAGE_TRANSFER_BIT|C.VK_PIPELINE_STAGE_HOST_BIT,
		C.VK_ACCESS_SHADER_READ_BIT|C.VK_ACCESS_SHADER_WRITE_BIT|C.VK_ACCESS_TRANSFER_READ_BIT|
			C.VK_ACCESS_TRANSFER_WRITE_BIT|C.VK_ACCESS_HOST_READ_BIT)
}
