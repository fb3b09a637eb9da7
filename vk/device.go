package vk

/*
#include <stdlib.h>
#include "nv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime/cgo"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Options choose and configure the device NewDevice opens.
type Options struct {
	// Validation enables VK_LAYER_KHRONOS_validation and captures its
	// messages (see Device.Messages).
	Validation bool
	// Device selects the physical device: "" means the NETI_DEVICE
	// environment variable, and if that is empty too, the default choice
	// (discrete > integrated > virtual > cpu). Otherwise an index into
	// ListDevices ("1") or a case-insensitive substring of the name.
	Device string
	// DisableF16 turns fp16 arithmetic and 16-bit storage off even where
	// the device has them (also NETI_DISABLE_F16=1), to bisect driver bugs.
	DisableF16 bool
	// CoopMatrix enables VK_KHR_cooperative_matrix where the device has it.
	// It is opt-in: no kernel uses it yet, and enabling an extension no
	// kernel needs only risks driver and layer trouble (validation layers
	// older than 1.3.255 reject its feature struct in vkCreateDevice, seen
	// on the H100 with Debian 12's layer). NETI_DISABLE_COOPMAT=1 vetoes it.
	CoopMatrix bool
	// DisableCoopMatrix vetoes CoopMatrix (also NETI_DISABLE_COOPMAT=1).
	DisableCoopMatrix bool
	// PipelineCacheDir holds the on-disk pipeline cache: "" means
	// os.UserCacheDir()/neti/pipelines, "-" disables it.
	PipelineCacheDir string
	// ForceStaging makes buffers use the staging ring even on unified
	// memory, where they would be mapped directly (tests, driver bisecting).
	ForceStaging bool
	// StagingSize is the size of the device's staging ring in bytes
	// (0 = 16 MiB). Uploads and downloads larger than half of it are
	// split into chunks.
	StagingSize int64
	// SubmitTimeout bounds each wait for the device (0 = 10 minutes,
	// negative = wait forever), so a hung GPU becomes an error, not a hang.
	SubmitTimeout time.Duration
	// Present also enables what showing pictures in an X11 window needs
	// (instance extensions VK_KHR_surface and VK_KHR_xlib_surface, device
	// extension VK_KHR_swapchain); NewDevice fails with an error wrapping
	// ErrNoPresent where the driver lacks them. Off, nothing changes for
	// headless use.
	Present bool
}

// DeviceInfo describes a physical device and what this package can use of it.
type DeviceInfo struct {
	Index      int
	Name       string
	Type       string // "discrete", "integrated", "virtual", "cpu" or "other"
	Driver     string // driver name, e.g. "llvmpipe"
	DriverInfo string // e.g. "Mesa 22.3.6 (LLVM 15.0.6)"
	APIVersion string // e.g. "1.3.230"

	VendorID, DeviceID uint32
	UUID               [16]byte
	DriverVersion      uint32

	HeapBytes uint64 // largest device-local heap

	SubgroupSize int
	SubgroupOps  []string // "basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"

	Float16   bool // shaderFloat16
	Storage16 bool // storageBuffer16BitAccess

	// CoopMatrix lists VK_KHR_cooperative_matrix shapes as
	// "MxNxK A/B/C->Result [scope]"; nil without the extension.
	CoopMatrix []string

	MaxStorageBufferRange uint64 // largest range one binding may cover
	MaxAllocation         uint64 // maxMemoryAllocationSize
	MaxBufferSize         uint64 // maxBufferSize (MaxAllocation without maintenance4)

	MaxSharedMemory         uint32
	MaxWorkgroupInvocations uint32
	MaxPushConstants        uint32
	MaxWorkgroupCount       [3]uint32
	MaxWorkgroupSize        [3]uint32
	MaxStorageBuffers       uint32 // maxPerStageDescriptorStorageBuffers: bindings per kernel

	MinStorageBufferOffsetAlignment uint64

	// UnifiedMemory: a DEVICE_LOCAL|HOST_VISIBLE|HOST_COHERENT memory type
	// lives on the largest device-local heap of a non-discrete device (CPU /
	// UMA), so buffers are mapped and need no staging. BAR windows of
	// discrete GPUs, resizable or not, do not count.
	UnifiedMemory bool

	TimestampPeriod     float32 // nanoseconds per timestamp tick
	TimestampsSupported bool

	// Default marks the device NewDevice picks when none is named.
	Default bool
	// Unsupported says why this package cannot open the device ("" if it can).
	Unsupported string
}

func (i DeviceInfo) String() string {
	s := fmt.Sprintf("%d: %s (%s", i.Index, i.Name, i.Type)
	if i.Driver != "" {
		s += ", " + i.Driver
	}
	if i.DriverInfo != "" {
		s += " " + i.DriverInfo
	}
	s += ", Vulkan " + i.APIVersion + ")"
	if i.Default {
		s += " [default]"
	}
	if i.Unsupported != "" {
		s += " [unsupported: " + i.Unsupported + "]"
	}
	return s
}

// Device is an open Vulkan device with one compute queue. It owns the
// instance, the queue, the staging ring and the pipeline cache. Buffers,
// Kernels and Recordings made from it must be closed before it; Close
// reports (and then releases) any that were not.
type Device struct {
	opts     Options
	info     DeviceInfo
	inst     *C.NvInstance // C memory
	sink     cgo.Handle
	log      *messageLog
	pd       C.VkPhysicalDevice
	dev      C.VkDevice
	queue    C.VkQueue
	family   uint32
	f16      bool
	coop     bool
	feedback bool // pipeline creation feedback is available
	tsMask   uint64
	cacheKey cacheKey

	mem         memoryProps
	mapBuffers  bool // buffers are host-mapped (UnifiedMemory and not ForceStaging)
	stagingSize int64
	timeout     time.Duration

	queueMu sync.Mutex // vkQueueSubmit needs external synchronization
	xfer    transfer
	cache   pipelineCache

	mu       sync.Mutex // guards closed and children
	closed   bool
	children map[child]struct{}
}

// child is an object made by a Device and released by it if leaked.
type child interface {
	describe() string
	order() int // release order on Device.Close: recordings, kernels, buffers
	markClosed() bool
	release()
}

// physical is one enumerated device with its C-side description.
type physical struct {
	pd   C.VkPhysicalDevice
	raw  *C.NvDeviceInfo // C memory, freed by freePhysicals
	info DeviceInfo
}

func freePhysicals(ps []physical) {
	for _, p := range ps {
		C.free(unsafe.Pointer(p.raw))
	}
}

// ListDevices describes every Vulkan device of the machine. It creates and
// destroys its own instance.
func ListDevices() ([]DeviceInfo, error) {
	if err := ensureLoaded(); err != nil {
		return nil, err
	}
	inst, err := createInstance(false, false, 0)
	if err != nil {
		return nil, err
	}
	defer destroyInstance(inst)
	ps, err := enumerate(inst)
	if err != nil {
		return nil, err
	}
	defer freePhysicals(ps)
	out := make([]DeviceInfo, len(ps))
	for i, p := range ps {
		out[i] = p.info
	}
	return out, nil
}

func createInstance(validation, present bool, sink cgo.Handle) (*C.NvInstance, error) {
	if v := uint32(C.nv_instance_version()); v < 1<<22|1<<12 {
		return nil, fmt.Errorf("%w: the Vulkan loader supports only Vulkan %s, 1.1 is required; %s",
			ErrNoVulkan, apiString(v), installHint)
	}
	if validation {
		if err := checkValidationLayer(); err != nil {
			return nil, err
		}
	}
	if present {
		for _, ext := range []string{"VK_KHR_surface", "VK_KHR_xlib_surface"} {
			if !hasInstanceExt("", ext) {
				return nil, fmt.Errorf("%w: the Vulkan loader and drivers do not offer %s", ErrNoPresent, ext)
			}
		}
	}
	portability := hasInstanceExt("", "VK_KHR_portability_enumeration")
	inst := (*C.NvInstance)(C.calloc(1, C.size_t(unsafe.Sizeof(C.NvInstance{}))))
	if inst == nil {
		return nil, fmt.Errorf("vk: create instance: %w", ErrOutOfHostMemory)
	}
	r := C.nv_create_instance(cbool(validation), cbool(portability), cbool(present), C.uintptr_t(sink), inst)
	if r != C.VK_SUCCESS {
		C.free(unsafe.Pointer(inst))
		res := Result(r)
		if res == ErrIncompatibleDriver || res == ErrInitializationFailed {
			return nil, fmt.Errorf("%w: no Vulkan driver (ICD) found: vkCreateInstance: %v; %s",
				ErrNoVulkan, res, installHint)
		}
		return nil, fmt.Errorf("vk: create instance: %w", res)
	}
	return inst, nil
}

func destroyInstance(inst *C.NvInstance) {
	C.nv_destroy_instance(inst)
	C.free(unsafe.Pointer(inst))
}

func checkValidationLayer() error {
	const layer = "VK_LAYER_KHRONOS_validation"
	cl := C.CString(layer)
	defer C.free(unsafe.Pointer(cl))
	if C.nv_has_layer(cl) == 0 {
		return fmt.Errorf("%w: %s is not installed (Debian/Ubuntu: apt-get install vulkan-validationlayers)",
			ErrNoValidation, layer)
	}
	if !hasInstanceExt(layer, "VK_EXT_debug_utils") && !hasInstanceExt("", "VK_EXT_debug_utils") {
		return fmt.Errorf("%w: VK_EXT_debug_utils is missing, so messages cannot be captured", ErrNoValidation)
	}
	return nil
}

func hasInstanceExt(layer, ext string) bool {
	var cl *C.char
	if layer != "" {
		cl = C.CString(layer)
		defer C.free(unsafe.Pointer(cl))
	}
	ce := C.CString(ext)
	defer C.free(unsafe.Pointer(ce))
	return C.nv_has_instance_ext(cl, ce) != 0
}

// maxPhysicalDevices bounds what a broken driver can make us allocate.
const maxPhysicalDevices = 64

func enumerate(inst *C.NvInstance) ([]physical, error) {
	var n C.uint32_t
	if r := C.nv_enumerate_devices(inst, &n, nil); r != C.VK_SUCCESS {
		return nil, check("enumerate physical devices", int32(r))
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the Vulkan loader found no device; %s", ErrNoVulkan, installHint)
	}
	if n > maxPhysicalDevices {
		n = maxPhysicalDevices
	}
	arr := (*C.VkPhysicalDevice)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.VkPhysicalDevice(nil)))))
	if arr == nil {
		return nil, fmt.Errorf("vk: enumerate physical devices: %w", ErrOutOfHostMemory)
	}
	defer C.free(unsafe.Pointer(arr))
	if r := C.nv_enumerate_devices(inst, &n, arr); r != C.VK_SUCCESS && r != C.VK_INCOMPLETE {
		return nil, check("enumerate physical devices", int32(r))
	}
	pds := unsafe.Slice(arr, int(n))
	ps := make([]physical, 0, n)
	for i, pd := range pds {
		raw := (*C.NvDeviceInfo)(C.calloc(1, C.size_t(unsafe.Sizeof(C.NvDeviceInfo{}))))
		if raw == nil {
			freePhysicals(ps)
			return nil, fmt.Errorf("vk: query device %d: %w", i, ErrOutOfHostMemory)
		}
		if r := C.nv_query_device(inst, pd, raw); r != C.VK_SUCCESS {
			C.free(unsafe.Pointer(raw))
			freePhysicals(ps)
			return nil, check(fmt.Sprintf("query device %d", i), int32(r))
		}
		ps = append(ps, physical{pd: pd, raw: raw, info: makeInfo(i, raw)})
	}
	infos := make([]DeviceInfo, len(ps))
	for i := range ps {
		infos[i] = ps[i].info
	}
	if d := defaultDevice(infos); d >= 0 {
		ps[d].info.Default = true
	}
	return ps, nil
}

func apiString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>22&0x7f, v>>12&0x3ff, v&0xfff)
}

var deviceTypes = map[C.VkPhysicalDeviceType]string{
	C.VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: "integrated",
	C.VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:   "discrete",
	C.VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:    "virtual",
	C.VK_PHYSICAL_DEVICE_TYPE_CPU:            "cpu",
}

var subgroupOps = []struct {
	bit  uint32
	name string
}{
	{C.VK_SUBGROUP_FEATURE_BASIC_BIT, "basic"},
	{C.VK_SUBGROUP_FEATURE_VOTE_BIT, "vote"},
	{C.VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic"},
	{C.VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot"},
	{C.VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle"},
	{C.VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle_relative"},
	{C.VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered"},
	{C.VK_SUBGROUP_FEATURE_QUAD_BIT, "quad"},
}

var componentTypes = map[int]string{
	0: "f16", 1: "f32", 2: "f64", 3: "s8", 4: "s16", 5: "s32", 6: "s64",
	7: "u8", 8: "u16", 9: "u32", 10: "u64", 1000141000: "bf16",
}

func componentName(t int) string {
	if s, ok := componentTypes[t]; ok {
		return s
	}
	return fmt.Sprintf("type%d", t)
}

var scopeNames = map[int]string{1: "device", 2: "workgroup", 3: "subgroup", 5: "queue_family"}

func makeInfo(index int, ci *C.NvDeviceInfo) DeviceInfo {
	p := &ci.props
	l := &p.limits
	info := DeviceInfo{
		Index:         index,
		Name:          C.GoString(&p.deviceName[0]),
		Type:          "other",
		APIVersion:    apiString(uint32(p.apiVersion)),
		VendorID:      uint32(p.vendorID),
		DeviceID:      uint32(p.deviceID),
		DriverVersion: uint32(p.driverVersion),

		MaxStorageBufferRange:           uint64(l.maxStorageBufferRange),
		MaxSharedMemory:                 uint32(l.maxComputeSharedMemorySize),
		MaxWorkgroupInvocations:         uint32(l.maxComputeWorkGroupInvocations),
		MaxPushConstants:                uint32(l.maxPushConstantsSize),
		MaxStorageBuffers:               uint32(l.maxPerStageDescriptorStorageBuffers),
		MinStorageBufferOffsetAlignment: uint64(l.minStorageBufferOffsetAlignment),
		TimestampPeriod:                 float32(l.timestampPeriod),
		TimestampsSupported:             ci.timestampBits > 0,
	}
	if t, ok := deviceTypes[p.deviceType]; ok {
		info.Type = t
	}
	for i := 0; i < 3; i++ {
		info.MaxWorkgroupCount[i] = uint32(l.maxComputeWorkGroupCount[i])
		info.MaxWorkgroupSize[i] = uint32(l.maxComputeWorkGroupSize[i])
	}
	mem := readMemoryProps(&ci.mem)
	info.HeapBytes = mem.largestLocalHeapSize()
	// Only without a PCIe bus in between: on a discrete GPU with resizable
	// BAR, host reads of VRAM crawl, so those keep the staging path.
	info.UnifiedMemory = mem.unifiedType(^uint32(0)) >= 0 && info.Type != "discrete"

	api := uint32(p.apiVersion)
	switch {
	case api>>22&0x7f == 1 && api>>12&0x3ff < 1:
		info.Unsupported = "Vulkan 1.1 is required, the device has " + info.APIVersion
		return info
	case ci.queueFamily == C.UINT32_MAX:
		info.Unsupported = "no compute queue"
	}
	if ci.hasDriverProps != 0 {
		info.Driver = C.GoString(&ci.driver.driverName[0])
		info.DriverInfo = C.GoString(&ci.driver.driverInfo[0])
	}
	for i := range info.UUID {
		info.UUID[i] = byte(ci.id.deviceUUID[i])
	}
	info.MaxAllocation = uint64(ci.maint3.maxMemoryAllocationSize)
	info.MaxBufferSize = info.MaxAllocation
	if ci.hasMaint4 != 0 {
		info.MaxBufferSize = uint64(ci.maint4.maxBufferSize)
	}
	info.SubgroupSize = int(ci.subgroup.subgroupSize)
	if ci.subgroup.supportedStages&C.VK_SHADER_STAGE_COMPUTE_BIT != 0 {
		ops := uint32(ci.subgroup.supportedOperations)
		for _, o := range subgroupOps {
			if ops&o.bit != 0 {
				info.SubgroupOps = append(info.SubgroupOps, o.name)
			}
		}
	}
	info.Float16 = ci.f16.shaderFloat16 != 0
	info.Storage16 = ci.s16.storageBuffer16BitAccess != 0
	if ci.hasCoop != 0 {
		info.CoopMatrix = []string{}
		for i := 0; i < int(ci.coopCount) && i < len(ci.coop); i++ {
			c := &ci.coop[i]
			s := fmt.Sprintf("%dx%dx%d %s/%s/%s->%s", c.MSize, c.NSize, c.KSize,
				componentName(int(c.AType)), componentName(int(c.BType)),
				componentName(int(c.CType)), componentName(int(c.ResultType)))
			if sc := int(c.scope); sc != 3 {
				if n, ok := scopeNames[sc]; ok {
					s += " " + n
				} else {
					s += fmt.Sprintf(" scope%d", sc)
				}
			}
			if c.saturatingAccumulation != 0 {
				s += " sat"
			}
			info.CoopMatrix = append(info.CoopMatrix, s)
		}
	}
	return info
}

var typeRank = map[string]int{"discrete": 0, "integrated": 1, "virtual": 2, "cpu": 3, "other": 4}

// defaultDevice picks discrete > integrated > virtual > cpu > other among the
// supported devices, the first enumerated on ties; -1 if none is usable.
func defaultDevice(infos []DeviceInfo) int {
	best := -1
	for i, d := range infos {
		if d.Unsupported != "" {
			continue
		}
		if best < 0 || typeRank[d.Type] < typeRank[infos[best].Type] {
			best = i
		}
	}
	return best
}

func deviceList(infos []DeviceInfo) string {
	var b strings.Builder
	for _, d := range infos {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// selectDevice resolves Options.Device against the enumerated devices.
func selectDevice(infos []DeviceInfo, sel string) (int, error) {
	sel = strings.TrimSpace(sel)
	var idx int
	switch {
	case sel == "":
		idx = defaultDevice(infos)
		if idx < 0 {
			return -1, fmt.Errorf("vk: no usable device; devices:%s", deviceList(infos))
		}
	case isIndex(sel):
		// Digits are always an index, never part of a name: "5" must not
		// pick "llvmpipe (LLVM 15.0.6)".
		i, err := strconv.Atoi(sel)
		if err != nil || i >= len(infos) {
			return -1, fmt.Errorf("vk: device %q: no device with that index (to match a name made of digits, add a word of it, e.g. \"rtx 4090\"); devices:%s",
				sel, deviceList(infos))
		}
		idx = i
	default:
		var matches []int
		low := strings.ToLower(sel)
		for i, d := range infos {
			if strings.Contains(strings.ToLower(d.Name), low) {
				matches = append(matches, i)
			}
		}
		switch len(matches) {
		case 0:
			return -1, fmt.Errorf("vk: device %q: no device name contains it; devices:%s", sel, deviceList(infos))
		case 1:
			idx = matches[0]
		default:
			return -1, fmt.Errorf("vk: device %q: %d devices match, choose one by index; devices:%s",
				sel, len(matches), deviceList(infos))
		}
	}
	if u := infos[idx].Unsupported; u != "" {
		return -1, fmt.Errorf("vk: device %d (%s) cannot be used: %s", idx, infos[idx].Name, u)
	}
	return idx, nil
}

func isIndex(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// F16Disabled says whether NETI_DISABLE_F16 vetoes fp16 on every device:
// what Device.F16 honours, for those who plan without opening a device.
func F16Disabled() bool { return envTrue("NETI_DISABLE_F16") }

func envTrue(name string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(name))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

const (
	defaultStagingSize   = 16 << 20
	minStagingSize       = 256
	defaultSubmitTimeout = 10 * time.Minute
)

// NewDevice opens a device as chosen by opts.
func NewDevice(opts Options) (*Device, error) {
	if err := ensureLoaded(); err != nil {
		return nil, err
	}
	if opts.Device == "" {
		opts.Device = os.Getenv("NETI_DEVICE")
	}
	opts.DisableF16 = opts.DisableF16 || F16Disabled()
	opts.DisableCoopMatrix = opts.DisableCoopMatrix || envTrue("NETI_DISABLE_COOPMAT")

	d := &Device{opts: opts, log: &messageLog{}, children: map[child]struct{}{}}
	d.sink = cgo.NewHandle(d.log)
	inst, err := createInstance(opts.Validation, opts.Present, d.sink)
	if err != nil {
		d.sink.Delete()
		return nil, err
	}
	d.inst = inst
	if err := d.open(); err != nil {
		destroyInstance(d.inst)
		d.sink.Delete()
		return nil, err
	}
	return d, nil
}

func (d *Device) open() error {
	ps, err := enumerate(d.inst)
	if err != nil {
		return err
	}
	defer freePhysicals(ps)
	infos := make([]DeviceInfo, len(ps))
	for i := range ps {
		infos[i] = ps[i].info
	}
	idx, err := selectDevice(infos, d.opts.Device)
	if err != nil {
		return err
	}
	p := ps[idx]
	d.info = p.info
	d.pd = p.pd
	d.family = uint32(p.raw.queueFamily)
	d.f16 = d.info.Float16 && d.info.Storage16 && !d.opts.DisableF16
	d.coop = d.info.CoopMatrix != nil && d.opts.CoopMatrix && !d.opts.DisableCoopMatrix
	d.feedback = p.raw.hasFeedback != 0
	if bits := uint32(p.raw.timestampBits); bits >= 64 {
		d.tsMask = ^uint64(0)
	} else {
		d.tsMask = 1<<bits - 1
	}
	for i := range d.cacheKey.uuid {
		d.cacheKey.uuid[i] = byte(p.raw.props.pipelineCacheUUID[i])
	}
	d.cacheKey.vendor, d.cacheKey.device = d.info.VendorID, d.info.DeviceID
	d.mem = readMemoryProps(&p.raw.mem)
	d.mapBuffers = d.info.UnifiedMemory && !d.opts.ForceStaging

	d.stagingSize = defaultStagingSize
	if s := d.opts.StagingSize; s > 0 {
		d.stagingSize = max(minStagingSize, s&^7) // two halves, each a multiple of 4
	}
	d.timeout = defaultSubmitTimeout
	if t := d.opts.SubmitTimeout; t != 0 {
		d.timeout = t
	}

	if d.opts.Present && p.raw.hasSwapchain == 0 {
		return fmt.Errorf("%w: device %d (%s) has no VK_KHR_swapchain", ErrNoPresent, idx, d.info.Name)
	}
	r := C.nv_create_device(d.pd, p.raw, cbool(d.f16), cbool(d.coop), cbool(d.opts.Present), &d.dev, &d.queue)
	if r != C.VK_SUCCESS {
		return fmt.Errorf("vk: create device %d (%s): %w", idx, d.info.Name, Result(r))
	}
	d.openPipelineCache()
	return nil
}

// Info describes the opened device.
func (d *Device) Info() DeviceInfo { return d.info }

// F16 reports whether fp16 arithmetic and 16-bit storage are enabled.
func (d *Device) F16() bool { return d.f16 }

// CoopMatrix reports whether VK_KHR_cooperative_matrix is enabled.
func (d *Device) CoopMatrix() bool { return d.coop }

// Messages returns the validation messages captured so far (none without
// Options.Validation).
func (d *Device) Messages() []Message { return d.log.snapshot() }

// ClearMessages forgets the captured messages.
func (d *Device) ClearMessages() { d.log.clear() }

// waitTimeout converts the configured timeout for vkWaitForFences.
func (d *Device) waitTimeout() C.uint64_t {
	if d.timeout < 0 {
		return C.UINT64_MAX
	}
	return C.uint64_t(d.timeout.Nanoseconds())
}

// submit hands one command buffer to the queue.
func (d *Device) submit(cb C.VkCommandBuffer, fence C.VkFence) error {
	d.queueMu.Lock()
	r := C.nv_submit(d.queue, cb, fence)
	d.queueMu.Unlock()
	return check("queue submit", int32(r))
}

// wait waits for a fence and resets it. A timeout leaves the fence pending
// and says so; the caller must not reuse what the fence guards.
func (d *Device) wait(fence C.VkFence) error {
	r := C.nv_wait_fence(d.dev, fence, d.waitTimeout())
	if r == C.VK_TIMEOUT {
		return fmt.Errorf("vk: device did not finish within %v (hung GPU or an overlong submission; see Options.SubmitTimeout): %w",
			d.timeout, ErrTimeout)
	}
	if r != C.VK_SUCCESS {
		return check("wait for fence", int32(r))
	}
	return check("reset fence", int32(C.nv_reset_fence(d.dev, fence)))
}

// register adds a child, failing if the device is closed.
func (d *Device) register(c child) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosedDevice
	}
	d.children[c] = struct{}{}
	return nil
}

// unregister removes a child being closed by its owner; false if it was
// already closed (by itself or by Device.Close).
func (d *Device) unregister(c child) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.markClosed() {
		return false
	}
	delete(d.children, c)
	return true
}

var errClosedDevice = errors.New("vk: device is closed")

func (d *Device) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close waits for the device, releases everything it owns and destroys it.
// Buffers, Kernels and Recordings that were not closed are released too and
// reported as an error, as are validation messages raised while closing.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var leaked []child
	for c := range d.children {
		if c.markClosed() {
			leaked = append(leaked, c)
		}
	}
	d.children = nil
	d.mu.Unlock()

	before := d.log.len()
	var errs []error
	if err := check("wait idle", int32(C.nv_device_wait_idle(d.dev))); err != nil {
		errs = append(errs, fmt.Errorf("vk: close device: %w", err))
	}
	if len(leaked) > 0 {
		sort.Slice(leaked, func(i, j int) bool {
			if leaked[i].order() != leaked[j].order() {
				return leaked[i].order() < leaked[j].order()
			}
			return leaked[i].describe() < leaked[j].describe()
		})
		names := make([]string, len(leaked))
		for i, c := range leaked {
			names[i] = c.describe()
			c.release()
		}
		errs = append(errs, fmt.Errorf("vk: close device: %d object(s) leaked (not closed before the device): %s",
			len(leaked), strings.Join(names, ", ")))
	}
	d.xfer.release(d)
	d.closePipelineCache()
	C.nv_destroy_device(d.dev)
	d.dev = nil
	destroyInstance(d.inst)
	d.inst = nil
	d.sink.Delete()

	if msgs := d.log.snapshot(); len(msgs) > before {
		var texts []string
		for _, m := range msgs[before:] {
			if m.Severity == "error" {
				texts = append(texts, m.String())
			}
		}
		if len(texts) > 0 {
			errs = append(errs, fmt.Errorf("vk: close device: validation: %s", strings.Join(texts, "; ")))
		}
	}
	return errors.Join(errs...)
}

// Submit records a recording with fn, ends it, submits it once, waits, and
// closes it.
func (d *Device) Submit(fn func(r *Recording) error) (err error) {
	r, err := d.NewRecording()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	if err := fn(r); err != nil {
		return err
	}
	if err := r.End(); err != nil {
		return err
	}
	return r.Submit()
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
