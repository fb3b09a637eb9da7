package vk

/*
#include "nv.h"
*/
import "C"

// Memory property flags (VkMemoryPropertyFlagBits).
const (
	memDeviceLocal  = C.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
	memHostVisible  = C.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT
	memHostCoherent = C.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
	memHostCached   = C.VK_MEMORY_PROPERTY_HOST_CACHED_BIT
	heapDeviceLocal = C.VK_MEMORY_HEAP_DEVICE_LOCAL_BIT
)

type memoryType struct {
	flags uint32
	heap  int
}

type memoryHeap struct {
	size  uint64
	flags uint32
}

// memoryProps is a Go copy of VkPhysicalDeviceMemoryProperties.
type memoryProps struct {
	types []memoryType
	heaps []memoryHeap
}

func readMemoryProps(m *C.VkPhysicalDeviceMemoryProperties) memoryProps {
	var p memoryProps
	nt := min(int(m.memoryTypeCount), len(m.memoryTypes))
	for i := 0; i < nt; i++ {
		t := m.memoryTypes[i]
		p.types = append(p.types, memoryType{flags: uint32(t.propertyFlags), heap: int(t.heapIndex)})
	}
	nh := min(int(m.memoryHeapCount), len(m.memoryHeaps))
	for i := 0; i < nh; i++ {
		h := m.memoryHeaps[i]
		p.heaps = append(p.heaps, memoryHeap{size: uint64(h.size), flags: uint32(h.flags)})
	}
	return p
}

// largestLocalHeap returns the index of the largest DEVICE_LOCAL heap, or -1.
func (p memoryProps) largestLocalHeap() int {
	best := -1
	for i, h := range p.heaps {
		if h.flags&heapDeviceLocal != 0 && (best < 0 || h.size > p.heaps[best].size) {
			best = i
		}
	}
	return best
}

func (p memoryProps) largestLocalHeapSize() uint64 {
	if i := p.largestLocalHeap(); i >= 0 {
		return p.heaps[i].size
	}
	return 0
}

// find returns the first type allowed by bits that has all of want and none
// of avoid, optionally restricted to one heap (heap < 0: any); -1 if none.
func (p memoryProps) find(bits, want, avoid uint32, heap int) int {
	for i, t := range p.types {
		if i >= 32 || bits&(1<<i) == 0 {
			continue
		}
		if t.flags&want == want && t.flags&avoid == 0 && (heap < 0 || t.heap == heap) {
			return i
		}
	}
	return -1
}

// unifiedType is a DEVICE_LOCAL|HOST_VISIBLE|HOST_COHERENT type on the
// largest device-local heap, or -1.
func (p memoryProps) unifiedType(bits uint32) int {
	heap := p.largestLocalHeap()
	if heap < 0 {
		return -1
	}
	const want = memDeviceLocal | memHostVisible | memHostCoherent
	if i := p.find(bits, want|memHostCached, 0, heap); i >= 0 {
		return i
	}
	return p.find(bits, want, 0, heap)
}

// deviceType prefers device-local memory the host cannot see (so a discrete
// GPU's small BAR window is not used up), then any device-local memory, then
// whatever the buffer allows.
func (p memoryProps) deviceType(bits uint32) int {
	if i := p.find(bits, memDeviceLocal, memHostVisible, -1); i >= 0 {
		return i
	}
	if i := p.find(bits, memDeviceLocal, 0, -1); i >= 0 {
		return i
	}
	return p.find(bits, 0, 0, -1)
}

// stagingType is host-visible coherent memory, cached when possible because
// downloads read it from the CPU.
func (p memoryProps) stagingType(bits uint32) int {
	const want = memHostVisible | memHostCoherent
	if i := p.find(bits, want|memHostCached, 0, -1); i >= 0 {
		return i
	}
	return p.find(bits, want, 0, -1)
}
