package vk

import "fmt"

// Result is a failing VkResult. It is an error, so callers can test for a
// specific one: errors.Is(err, vk.ErrOutOfDeviceMemory).
type Result int32

// The results callers may want to tell apart.
const (
	ErrOutOfHostMemory      Result = -1
	ErrOutOfDeviceMemory    Result = -2
	ErrInitializationFailed Result = -3
	ErrDeviceLost           Result = -4
	ErrIncompatibleDriver   Result = -9
	ErrTimeout              Result = 2

	errFragmentedPool  Result = -12
	errOutOfPoolMemory Result = -1000069000
)

var resultNames = map[Result][2]string{
	1:           {"VK_NOT_READY", "not ready"},
	2:           {"VK_TIMEOUT", "timed out"},
	3:           {"VK_EVENT_SET", "event set"},
	4:           {"VK_EVENT_RESET", "event reset"},
	5:           {"VK_INCOMPLETE", "incomplete"},
	-1:          {"VK_ERROR_OUT_OF_HOST_MEMORY", "out of host memory"},
	-2:          {"VK_ERROR_OUT_OF_DEVICE_MEMORY", "out of device memory"},
	-3:          {"VK_ERROR_INITIALIZATION_FAILED", "initialization failed"},
	-4:          {"VK_ERROR_DEVICE_LOST", "device lost (driver crash, hang or GPU reset)"},
	-5:          {"VK_ERROR_MEMORY_MAP_FAILED", "memory map failed"},
	-6:          {"VK_ERROR_LAYER_NOT_PRESENT", "layer not present"},
	-7:          {"VK_ERROR_EXTENSION_NOT_PRESENT", "extension not present"},
	-8:          {"VK_ERROR_FEATURE_NOT_PRESENT", "feature not present"},
	-9:          {"VK_ERROR_INCOMPATIBLE_DRIVER", "no compatible Vulkan driver"},
	-10:         {"VK_ERROR_TOO_MANY_OBJECTS", "too many objects"},
	-11:         {"VK_ERROR_FORMAT_NOT_SUPPORTED", "format not supported"},
	-12:         {"VK_ERROR_FRAGMENTED_POOL", "fragmented pool"},
	-13:         {"VK_ERROR_UNKNOWN", "unknown error"},
	-1000069000: {"VK_ERROR_OUT_OF_POOL_MEMORY", "out of pool memory"},
	-1000072003: {"VK_ERROR_INVALID_EXTERNAL_HANDLE", "invalid external handle"},
	-1000161000: {"VK_ERROR_FRAGMENTATION", "fragmentation"},
	-1000257000: {"VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS", "invalid opaque capture address"},
	1000297000:  {"VK_PIPELINE_COMPILE_REQUIRED", "pipeline compile required"},
}

func (r Result) Error() string {
	if n, ok := resultNames[r]; ok {
		return n[0] + " (" + n[1] + ")"
	}
	return fmt.Sprintf("VkResult %d", int32(r))
}

// check turns a VkResult into nil or an error naming the operation.
func check(op string, r int32) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("vk: %s: %w", op, Result(r))
}
