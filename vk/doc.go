// Package vk is neti's own thin Vulkan binding and compute runtime. All cgo
// and unsafe code of the project lives here; other packages see Go types.
//
// Vocabulary (after Kompute): a Device (instance, physical device, one
// compute queue, staging ring, pipeline cache), Buffers (device memory),
// Kernels (SPIR-V + specialization -> compute pipeline) and Recordings (a
// command buffer of dispatches, barriers, copies and timestamps, recorded
// once and submitted many times).
//
// Ownership is explicit: whatever New* makes, its Close releases, and every
// Close is idempotent. Buffers, Kernels and Recordings belong to the Device
// that made them and must be closed before it; Device.Close releases the ones
// that were not and returns an error naming them, so leaks show up in tests.
// A Recording references the kernels and buffers it dispatched with; closing
// one of them makes later Submits of that recording fail instead of running
// on freed memory. Descriptor sets, descriptor pools and query pools are owned
// by the Recording that allocated them.
//
// Synchronization: Submit and Buffer.Fill wait for the device before
// returning, and each Recording starts with a barrier against earlier
// submissions and ends with one that makes its writes visible to the host, so
// Buffer.Read after Submit sees the results. Within a Recording, call Barrier
// between dispatches that depend on each other. The queue is guarded by a
// mutex; a Recording is used by one goroutine at a time.
//
// libvulkan is opened at run time (dlopen), so binaries start on machines
// without Vulkan; NewDevice and ListDevices then return an error wrapping
// ErrNoVulkan that names the packages to install.
package vk
