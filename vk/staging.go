package vk

/*
#include "nv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// transfer is the Device's staging ring: one host-visible buffer split in
// two halves, each with its own command buffer and fence, so the CPU fills or
// drains one chunk while the device copies the other. Created on first use;
// one transfer at a time (mu).
type transfer struct {
	mu        sync.Mutex
	cmdsReady bool
	buf       C.VkBuffer
	mem       C.VkDeviceMemory
	mapped    []byte // C memory
	half      int64
	slots     [2]xferSlot
}

type xferSlot struct {
	cmd     C.NvCmd
	pending bool
}

// initCmds creates the two command buffers (enough for Fill).
func (x *transfer) initCmds(d *Device) error {
	if x.cmdsReady {
		return nil
	}
	for i := range x.slots {
		if r := C.nv_create_cmd(d.dev, C.uint32_t(d.family), &x.slots[i].cmd); r != C.VK_SUCCESS {
			x.destroy(d)
			return fmt.Errorf("vk: transfer command buffer: %w", Result(r))
		}
	}
	x.cmdsReady = true
	return nil
}

// init creates the command buffers and the staging buffer.
func (x *transfer) init(d *Device) error {
	if err := x.initCmds(d); err != nil {
		return err
	}
	if x.mapped != nil {
		return nil
	}
	size := d.stagingSize
	var req C.VkMemoryRequirements
	if r := C.nv_create_buffer(d.dev, C.VkDeviceSize(size), &x.buf, &req); r != C.VK_SUCCESS {
		x.buf = 0
		return fmt.Errorf("vk: staging ring of %d bytes: %w", size, Result(r))
	}
	typ := d.mem.stagingType(uint32(req.memoryTypeBits))
	if typ < 0 {
		x.destroyStaging(d)
		return errors.New("vk: staging ring: the device has no host-visible coherent memory type")
	}
	var ptr unsafe.Pointer
	if r := C.nv_alloc_bind(d.dev, x.buf, req.size, C.uint32_t(typ), &x.mem, &ptr); r != C.VK_SUCCESS {
		x.destroyStaging(d)
		return fmt.Errorf("vk: staging ring: allocate %d bytes: %w", uint64(req.size), Result(r))
	}
	x.mapped = unsafe.Slice((*byte)(ptr), size)
	x.half = size / 2
	return nil
}

func (x *transfer) destroyStaging(d *Device) {
	C.nv_destroy_buffer(d.dev, x.buf, x.mem)
	x.buf, x.mem, x.mapped = 0, 0, nil
}

func (x *transfer) destroy(d *Device) {
	for i := range x.slots {
		C.nv_destroy_cmd(d.dev, &x.slots[i].cmd)
		x.slots[i].pending = false
	}
	x.cmdsReady = false
	x.destroyStaging(d)
}

// release is called by Device.Close after the device is idle.
func (x *transfer) release(d *Device) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.destroy(d)
}

// waitSlot waits for a slot's previous submission.
func (x *transfer) waitSlot(d *Device, s *xferSlot) error {
	if !s.pending {
		return nil
	}
	if err := d.wait(s.cmd.fence); err != nil {
		return err
	}
	s.pending = false
	return nil
}

// drain waits for every slot; used before returning, also on errors, so the
// next transfer starts from idle slots.
func (x *transfer) drain(d *Device) error {
	var errs []error
	for i := range x.slots {
		errs = append(errs, x.waitSlot(d, &x.slots[i]))
	}
	return errors.Join(errs...)
}

// run records fn into slot s and submits it without waiting.
func (x *transfer) run(d *Device, s *xferSlot, fn func(cb C.VkCommandBuffer)) error {
	cb := s.cmd.cb
	if err := check("begin transfer", int32(C.nv_begin(cb, 1))); err != nil {
		return err
	}
	fn(cb)
	if err := check("end transfer", int32(C.nv_end(cb))); err != nil {
		return err
	}
	if err := d.submit(cb, s.cmd.fence); err != nil {
		return err
	}
	s.pending = true
	return nil
}

func (x *transfer) write(d *Device, b *Buffer, offset int64, data []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.init(d); err != nil {
		return fmt.Errorf("vk: write %d bytes: %w", len(data), err)
	}
	var err error
	for i, pos := 0, int64(0); pos < int64(len(data)) && err == nil; i++ {
		s := &x.slots[i%2]
		if err = x.waitSlot(d, s); err != nil {
			break
		}
		n := min(x.half, int64(len(data))-pos)
		base := int64(i%2) * x.half
		copy(x.mapped[base:base+n], data[pos:pos+n])
		dst := C.VkDeviceSize(offset + pos)
		err = x.run(d, s, func(cb C.VkCommandBuffer) {
			barrierBefore(cb, C.VK_PIPELINE_STAGE_TRANSFER_BIT, C.VK_ACCESS_TRANSFER_WRITE_BIT)
			C.nv_cmd_copy(cb, x.buf, C.VkDeviceSize(base), b.buf, dst, C.VkDeviceSize(n))
		})
		pos += n
	}
	if derr := x.drain(d); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("vk: write %d bytes at offset %d: %w", len(data), offset, err)
	}
	return nil
}

func (x *transfer) read(d *Device, b *Buffer, offset int64, dst []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.init(d); err != nil {
		return fmt.Errorf("vk: read %d bytes: %w", len(dst), err)
	}
	total := int64(len(dst))
	chunks := (total + x.half - 1) / x.half
	submit := func(k int64) error {
		s := &x.slots[k%2]
		base := (k % 2) * x.half
		pos := k * x.half
		n := min(x.half, total-pos)
		return x.run(d, s, func(cb C.VkCommandBuffer) {
			barrierBefore(cb, C.VK_PIPELINE_STAGE_TRANSFER_BIT, C.VK_ACCESS_TRANSFER_READ_BIT)
			C.nv_cmd_copy(cb, b.buf, C.VkDeviceSize(offset+pos), x.buf, C.VkDeviceSize(base), C.VkDeviceSize(n))
			C.nv_cmd_barrier(cb, C.VK_PIPELINE_STAGE_TRANSFER_BIT, C.VK_ACCESS_TRANSFER_WRITE_BIT,
				C.VK_PIPELINE_STAGE_HOST_BIT, C.VK_ACCESS_HOST_READ_BIT)
		})
	}
	err := submit(0)
	for k := int64(0); k < chunks && err == nil; k++ {
		// Queue the next chunk before copying this one out.
		if k+1 < chunks {
			if err = submit(k + 1); err != nil {
				break
			}
		}
		if err = x.waitSlot(d, &x.slots[k%2]); err != nil {
			break
		}
		base := (k % 2) * x.half
		pos := k * x.half
		n := min(x.half, total-pos)
		copy(dst[pos:pos+n], x.mapped[base:base+n])
	}
	if derr := x.drain(d); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("vk: read %d bytes at offset %d: %w", len(dst), offset, err)
	}
	return nil
}

// oneShot records fn on the transfer command buffer, submits it and waits.
func (x *transfer) oneShot(d *Device, fn func(cb C.VkCommandBuffer)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.initCmds(d); err != nil {
		return err
	}
	err := x.run(d, &x.slots[0], fn)
	if derr := x.drain(d); err == nil {
		err = derr
	}
	return err
}
