package vk

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestListDevices(t *testing.T) {
	sharedDevice(t)
	devs, err := ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	defaults := 0
	for i, d := range devs {
		t.Logf("%v", d)
		if d.Index != i {
			t.Errorf("device %d has Index %d", i, d.Index)
		}
		if d.Name == "" || d.APIVersion == "" {
			t.Errorf("device %d: empty name or API version: %+v", i, d)
		}
		if _, ok := typeRank[d.Type]; !ok {
			t.Errorf("device %d: type %q", i, d.Type)
		}
		if d.Default {
			defaults++
		}
		if d.Unsupported != "" {
			continue
		}
		if d.MaxAllocation == 0 || d.MaxBufferSize == 0 || d.MaxStorageBufferRange == 0 ||
			d.MaxPushConstants < 128 || d.MaxWorkgroupCount[0] == 0 || d.MinStorageBufferOffsetAlignment == 0 ||
			d.HeapBytes == 0 || d.SubgroupSize == 0 || d.MaxStorageBuffers < 4 {
			t.Errorf("device %d: implausible limits: %+v", i, d)
		}
	}
	if defaults != 1 {
		t.Errorf("%d devices marked default, want 1", defaults)
	}
	// The shared device was opened with the default choice.
	if info := shared.Info(); !devs[info.Index].Default || devs[info.Index].Name != info.Name {
		t.Errorf("shared device %v is not the listed default", info)
	}
}

func TestDeviceChoice(t *testing.T) {
	d := sharedDevice(t)
	info := d.Info()
	name := info.Name
	tests := []struct {
		name    string
		sel     string
		env     string
		wantErr string // "" = opens the shared device's physical device
	}{
		{"index", strconv.Itoa(info.Index), "", ""},
		{"name substring, other case", strings.ToUpper(name[:min(4, len(name))]), "", ""},
		{"env index", "", strconv.Itoa(info.Index), ""},
		{"option wins over env", strconv.Itoa(info.Index), "no-such-gpu", ""},
		{"bad index", "97", "", "no device with that index"},
		{"bad name", "no-such-gpu", "", "no device name contains it"},
		{"bad env", "", "no-such-gpu", "no device name contains it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NETI_DEVICE", tc.env)
			got, err := NewDevice(Options{Validation: true, Device: tc.sel, PipelineCacheDir: "-"})
			if tc.wantErr != "" {
				if err == nil {
					got.Close()
					t.Fatalf("NewDevice(%q) succeeded, want error %q", tc.sel, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), name) {
					t.Errorf("error %q should say %q and list the devices", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gi := got.Info()
			if gi.Index != info.Index || gi.UUID != info.UUID {
				t.Errorf("opened %v, want %v", gi, info)
			}
			if err := got.Close(); err != nil {
				t.Error(err)
			}
			failOnMessages(t, got)
		})
	}
}

// selectDevice and defaultDevice are pure: check the multi-GPU cases this
// machine cannot show.
func TestSelectDevice(t *testing.T) {
	devs := []DeviceInfo{
		{Index: 0, Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Type: "cpu"},
		{Index: 1, Name: "Intel(R) UHD Graphics 630", Type: "integrated"},
		{Index: 2, Name: "NVIDIA GeForce RTX 4090", Type: "discrete"},
		{Index: 3, Name: "NVIDIA GeForce RTX 3060", Type: "discrete"},
		{Index: 4, Name: "Old Thing", Type: "discrete", Unsupported: "Vulkan 1.1 is required"},
	}
	tests := []struct {
		sel     string
		want    int
		wantErr string
	}{
		{"", 2, ""},
		{"0", 0, ""},
		{" 3 ", 3, ""},
		{"intel", 1, ""},
		{"LLVMPIPE", 0, ""},
		{"rtx 4090", 2, ""},
		{"4090", -1, "no device with that index"},
		{"5", -1, "no device with that index"},
		{"nvidia", -1, "2 devices match"},
		{"5", -1, "no device with that index"},
		{"-1", -1, "no device name contains it"},
		{"99999999999999999999", -1, "no device with that index"},
		{"radeon", -1, "no device name contains it"},
		{"4", -1, "cannot be used"},
	}
	for _, tc := range tests {
		got, err := selectDevice(devs, tc.sel)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("selectDevice(%q) = %d, %v; want error %q", tc.sel, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("selectDevice(%q) = %d, %v; want %d", tc.sel, got, err, tc.want)
		}
	}

	order := []struct {
		types []string
		want  int
	}{
		{[]string{"cpu", "virtual", "integrated"}, 2},
		{[]string{"cpu", "virtual"}, 1},
		{[]string{"other", "cpu"}, 1},
		{[]string{"integrated", "discrete", "discrete"}, 1},
		{nil, -1},
	}
	for _, tc := range order {
		infos := make([]DeviceInfo, len(tc.types))
		for i, ty := range tc.types {
			infos[i] = DeviceInfo{Index: i, Type: ty, Name: ty}
		}
		if got := defaultDevice(infos); got != tc.want {
			t.Errorf("defaultDevice(%v) = %d, want %d", tc.types, got, tc.want)
		}
	}
	if _, err := selectDevice(devs[4:], ""); err == nil || !strings.Contains(err.Error(), "no usable device") {
		t.Errorf("only unsupported devices: err = %v", err)
	}
}

func TestNoDriver(t *testing.T) {
	sharedDevice(t) // the loader must be there; the driver is hidden
	t.Setenv("VK_ICD_FILENAMES", "/nonexistent/neti_icd.json")
	t.Setenv("VK_DRIVER_FILES", "/nonexistent/neti_icd.json")
	_, err := ListDevices()
	if !errors.Is(err, ErrNoVulkan) {
		t.Fatalf("ListDevices without a driver: %v, want ErrNoVulkan", err)
	}
	if !strings.Contains(err.Error(), "mesa-vulkan-drivers") {
		t.Errorf("error %q does not name the package to install", err)
	}
}

func TestNoLoader(t *testing.T) {
	open := func(name string) (string, bool) { return name + ": cannot open shared object file", false }
	err := loadLibrary([]string{"libvulkan.so.1", "libvulkan.so"}, open)
	if !errors.Is(err, ErrNoVulkan) {
		t.Fatalf("err = %v, want ErrNoVulkan", err)
	}
	for _, want := range []string{"libvulkan.so.1: cannot open", "libvulkan1", "mesa-vulkan-drivers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := loadLibrary([]string{"a", "b"}, func(n string) (string, bool) { return "", n == "b" }); err != nil {
		t.Errorf("second name loads: %v", err)
	}
}

func TestFeatureSwitches(t *testing.T) {
	d := sharedDevice(t)
	info := d.Info()
	if d.F16() != (info.Float16 && info.Storage16) {
		t.Errorf("F16() = %v with Float16 %v, Storage16 %v", d.F16(), info.Float16, info.Storage16)
	}
	if d.CoopMatrix() {
		t.Errorf("cooperative matrix enabled without Options.CoopMatrix")
	}
	t.Setenv("NETI_DISABLE_F16", "1")
	t.Setenv("NETI_DISABLE_COOPMAT", "1")
	off := newDevice(t, Options{CoopMatrix: true})
	if off.F16() || off.CoopMatrix() {
		t.Errorf("with NETI_DISABLE_F16/COOPMAT: F16 %v, CoopMatrix %v", off.F16(), off.CoopMatrix())
	}
}

func TestMemoryTypeChoice(t *testing.T) {
	const dl, hv, hc, cached = memDeviceLocal, memHostVisible, memHostCoherent, memHostCached
	lavapipe := memoryProps{
		types: []memoryType{{dl | hv | hc | cached, 0}},
		heaps: []memoryHeap{{2 << 30, heapDeviceLocal}},
	}
	// A discrete GPU without resizable BAR: VRAM, a 256 MiB BAR window and
	// system memory.
	discrete := memoryProps{
		types: []memoryType{{dl, 0}, {hv | hc, 1}, {hv | hc | cached, 1}, {dl | hv | hc, 2}},
		heaps: []memoryHeap{{8 << 30, heapDeviceLocal}, {16 << 30, 0}, {256 << 20, heapDeviceLocal}},
	}
	tests := []struct {
		name                  string
		p                     memoryProps
		bits                  uint32
		unified, dev, staging int
	}{
		{"lavapipe", lavapipe, 1, 0, 0, 0},
		{"discrete", discrete, 0xf, -1, 0, 2},
		{"discrete, VRAM not allowed", discrete, 0xe, -1, 3, 2},
		{"no type allowed", discrete, 0, -1, -1, -1},
	}
	for _, tc := range tests {
		if got := tc.p.unifiedType(tc.bits); got != tc.unified {
			t.Errorf("%s: unifiedType = %d, want %d", tc.name, got, tc.unified)
		}
		if got := tc.p.deviceType(tc.bits); got != tc.dev {
			t.Errorf("%s: deviceType = %d, want %d", tc.name, got, tc.dev)
		}
		if got := tc.p.stagingType(tc.bits); got != tc.staging {
			t.Errorf("%s: stagingType = %d, want %d", tc.name, got, tc.staging)
		}
	}
	if got := discrete.largestLocalHeapSize(); got != 8<<30 {
		t.Errorf("largest local heap = %d", got)
	}
}

func TestLeakReported(t *testing.T) {
	if shared == nil {
		t.Skipf("no Vulkan device: %v", sharedErr)
	}
	d, err := NewDevice(Options{Validation: true, PipelineCacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.NewBuffer(64)
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.NewKernel(incSpec(1))
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.NewRecording()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(k, []Binding{{Buf: b}}, u32bytes(16, 1), 1, 1, 1); err != nil {
		t.Fatal(err)
	}
	err = d.Close()
	if err == nil {
		t.Fatal("Close with a leaked buffer, kernel and recording returned nil")
	}
	for _, want := range []string{"3 object(s) leaked", "Buffer(64 bytes)", "Kernel(inc)", "Recording(1 dispatches)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("leak error %q lacks %q", err, want)
		}
	}
	// The device released them; closing the leaked objects now is harmless.
	for _, c := range []interface{ Close() error }{r, k, b} {
		if err := c.Close(); err != nil {
			t.Errorf("Close after the device: %v", err)
		}
	}
	if err := d.Close(); err != nil {
		t.Errorf("second device Close: %v", err)
	}
	failOnMessages(t, d)
	if _, err := d.NewBuffer(4); err == nil {
		t.Error("NewBuffer on a closed device succeeded")
	}
}

// TestValidationCaptured shows the message guard can fail: a kernel whose
// layout lacks a binding the shader uses must produce a validation error.
func TestValidationCaptured(t *testing.T) {
	if shared == nil {
		t.Skipf("no Vulkan device: %v", sharedErr)
	}
	d, err := NewDevice(Options{Validation: true, PipelineCacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	spec := saxpySpec(64, 1)
	spec.Bindings = 2 // the shader uses binding 2 too
	k, err := d.NewKernel(spec)
	if err == nil {
		defer k.Close()
	}
	var found bool
	for _, m := range d.Messages() {
		t.Logf("captured: %v", m)
		if m.Severity == "error" && strings.HasPrefix(m.ID, "VUID-") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no validation error captured for a missing binding (NewKernel err %v)", err)
	}
	d.ClearMessages()
	if len(d.Messages()) != 0 {
		t.Error("ClearMessages left messages")
	}
}

func TestMessageLogBounded(t *testing.T) {
	var l messageLog
	for i := 0; i < maxMessages+10; i++ {
		l.add(Message{Severity: "error", ID: "x"})
	}
	msgs := l.snapshot()
	if len(msgs) != maxMessages+1 || !strings.Contains(msgs[maxMessages].Text, "10 more") {
		t.Errorf("got %d messages, last %v", len(msgs), msgs[len(msgs)-1])
	}
	l.clear()
	if len(l.snapshot()) != 0 {
		t.Error("clear left messages")
	}
}

func TestResultError(t *testing.T) {
	err := check("allocate", int32(ErrOutOfDeviceMemory))
	if !errors.Is(err, ErrOutOfDeviceMemory) || !strings.Contains(err.Error(), "out of device memory") {
		t.Errorf("check = %v", err)
	}
	if check("x", 0) != nil {
		t.Error("VK_SUCCESS is an error")
	}
	if s := Result(-424242).Error(); !strings.Contains(s, "-424242") {
		t.Errorf("unknown result text %q", s)
	}
}
