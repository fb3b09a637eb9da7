// Package testdev gives a package's tests one shared Vulkan device with the
// validation layer on, and fails each test on any validation message it
// caused. Without Vulkan, GPU checks skip, unless REQUIRE_VULKAN=1 (CI),
// which turns a missing device into a failure.
package testdev

import (
	"fmt"
	"os"
	"testing"

	"github.com/neti-project/neti/vk"
)

var shared *vk.Device

// Main opens the device, runs the tests and closes it; a leak reported at
// close fails the run. Use it as TestMain: func TestMain(m *testing.M) { testdev.Main(m) }.
func Main(m *testing.M) {
	d, err := vk.NewDevice(vk.Options{Validation: true, PipelineCacheDir: "-"})
	if err != nil {
		if os.Getenv("REQUIRE_VULKAN") == "1" {
			fmt.Fprintln(os.Stderr, "REQUIRE_VULKAN=1 but:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "no Vulkan device, GPU checks skip:", err)
	}
	shared = d
	code := m.Run()
	if d != nil {
		if err := d.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "device close:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Device returns the shared device, or skips the test without one. Any
// validation message during the test fails it.
func Device(t testing.TB) *vk.Device {
	t.Helper()
	d := Optional(t)
	if d == nil {
		t.Skip("no Vulkan device")
	}
	return d
}

// Optional is Device for tests that also check something on the CPU: it
// returns nil instead of skipping.
func Optional(t testing.TB) *vk.Device {
	t.Helper()
	if shared == nil {
		return nil
	}
	shared.ClearMessages()
	t.Cleanup(func() {
		for _, m := range shared.Messages() {
			t.Errorf("validation: %v", m)
		}
	})
	return shared
}
