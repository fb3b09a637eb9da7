package vk

/*
#cgo CFLAGS: -DVK_USE_64_BIT_PTR_DEFINES=0
#cgo linux LDFLAGS: -ldl
#include <stdlib.h>
#include "nv.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// ErrNoVulkan is wrapped by every error that means "this machine cannot run
// Vulkan at all": no loader library, no driver, no device. Callers (and tests)
// test for it with errors.Is to skip rather than fail.
var ErrNoVulkan = errors.New("vk: no usable Vulkan")

// ErrNoValidation is wrapped when validation was asked for but the Khronos
// validation layer is not installed.
var ErrNoValidation = errors.New("vk: validation layer not available")

// installHint names the Debian packages; the project's CI and users run Debian
// or Ubuntu, and other systems have equivalent package names.
const installHint = "install a Vulkan loader and driver: on Debian/Ubuntu " +
	"`apt-get install libvulkan1 mesa-vulkan-drivers` (mesa-vulkan-drivers brings lavapipe, " +
	"a CPU implementation), or your GPU vendor's driver"

// libraryNames are tried in order. The loader is opened at run time rather
// than linked so that a binary built here still starts (and can explain what
// to install) on a machine without libvulkan.
func libraryNames() []string {
	if runtime.GOOS == "darwin" {
		return []string{"libvulkan.1.dylib", "libvulkan.dylib", "libMoltenVK.dylib"}
	}
	return []string{"libvulkan.so.1", "libvulkan.so"}
}

// The loaded library is process-wide by nature (dlopen); it is written once
// and never changes afterwards.
var loadOnce struct {
	sync.Once
	err error
}

func ensureLoaded() error {
	loadOnce.Do(func() { loadOnce.err = loadLibrary(libraryNames(), tryLoad) })
	return loadOnce.err
}

// loadLibrary tries each name with open, which returns why it failed.
func loadLibrary(names []string, open func(name string) (string, bool)) error {
	var tried []string
	for _, name := range names {
		msg, ok := open(name)
		if ok {
			return nil
		}
		tried = append(tried, msg)
	}
	return fmt.Errorf("%w: cannot load the Vulkan loader (%s); %s",
		ErrNoVulkan, strings.Join(tried, "; "), installHint)
}

func tryLoad(name string) (string, bool) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	const errLen = 512
	buf := (*C.char)(C.calloc(errLen, 1))
	defer C.free(unsafe.Pointer(buf))
	if C.nv_load(cname, buf, errLen) != 0 {
		return C.GoString(buf), false
	}
	return "", true
}
