package vk

/*
#include "nv.h"
*/
import "C"

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"
)

// CacheStats describes the on-disk pipeline cache of a Device.
type CacheStats struct {
	Path    string // the cache file ("" when the cache is disabled)
	Loaded  int    // bytes of driver cache data accepted from the file
	Ignored string // why an existing file was not used ("" if it was, or there was none)
	Saved   int    // bytes written by the last save
	SaveErr string // why the last save failed ("")
	// Hits and Misses count kernels the driver reported as found, or not,
	// in the cache (pipeline creation feedback); both stay 0 where the
	// driver does not report it.
	Hits, Misses int
}

// pipelineCache wraps the device's VkPipelineCache. Pipeline creation
// reads it concurrently (drivers synchronize internally); saving takes the
// write lock.
type pipelineCache struct {
	mu     sync.RWMutex
	handle C.VkPipelineCache
	loaded []byte // driver data read from disk, to skip rewriting unchanged data
	stats  CacheStats
	hits   atomic.Int64
	misses atomic.Int64
}

// cacheKey is what the driver's data header must match.
type cacheKey struct {
	vendor, device uint32
	uuid           [16]byte // pipelineCacheUUID
}

// Our file wraps the driver's data: magic, payload length and SHA-256, so a
// truncated or corrupted file is detected before the driver parses it (not
// every driver survives garbage).
var cacheMagic = [8]byte{'N', 'E', 'T', 'I', 'V', 'K', 'P', 'C'}

const (
	cacheFileHeader = 8 + 8 + sha256.Size
	maxCacheFile    = 256 << 20 // larger files are ignored, not read
	vkCacheHeader   = 32        // VkPipelineCacheHeaderVersionOne
)

func cacheFileName(info DeviceInfo) string {
	return fmt.Sprintf("%08x-%08x-%x-%08x.vkpc", info.VendorID, info.DeviceID, info.UUID, info.DriverVersion)
}

func encodeCacheFile(payload []byte) []byte {
	out := make([]byte, cacheFileHeader, cacheFileHeader+len(payload))
	copy(out, cacheMagic[:])
	binary.LittleEndian.PutUint64(out[8:], uint64(len(payload)))
	sum := sha256.Sum256(payload)
	copy(out[16:], sum[:])
	return append(out, payload...)
}

// decodeCacheFile returns the driver data of a cache file, or why the file
// cannot be used with this device.
func decodeCacheFile(data []byte, key cacheKey) ([]byte, error) {
	if len(data) >= len(cacheMagic) && !bytes.Equal(data[:len(cacheMagic)], cacheMagic[:]) {
		return nil, errors.New("not a neti pipeline cache (bad magic)")
	}
	if len(data) < cacheFileHeader {
		return nil, fmt.Errorf("file too short (%d bytes)", len(data))
	}
	n := binary.LittleEndian.Uint64(data[8:])
	payload := data[cacheFileHeader:]
	if n != uint64(len(payload)) {
		return nil, fmt.Errorf("truncated: header says %d bytes, file has %d", n, len(payload))
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], data[16:cacheFileHeader]) {
		return nil, errors.New("checksum mismatch")
	}
	if len(payload) < vkCacheHeader {
		return nil, fmt.Errorf("driver data too short (%d bytes)", len(payload))
	}
	hsize := binary.LittleEndian.Uint32(payload[0:])
	version := binary.LittleEndian.Uint32(payload[4:])
	vendor := binary.LittleEndian.Uint32(payload[8:])
	device := binary.LittleEndian.Uint32(payload[12:])
	switch {
	case hsize < vkCacheHeader || uint64(hsize) > uint64(len(payload)):
		return nil, fmt.Errorf("bad driver header size %d", hsize)
	case version != 1:
		return nil, fmt.Errorf("unknown driver header version %d", version)
	case vendor != key.vendor || device != key.device:
		return nil, fmt.Errorf("made for device %04x:%04x, this is %04x:%04x", vendor, device, key.vendor, key.device)
	case !bytes.Equal(payload[16:32], key.uuid[:]):
		return nil, errors.New("made by another driver build (pipelineCacheUUID differs)")
	}
	return payload, nil
}

// readCacheFile reads a file of bounded size; a missing file is (nil, nil).
func readCacheFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCacheFile {
		return nil, fmt.Errorf("larger than %d bytes", maxCacheFile)
	}
	return data, nil
}

// writeFileAtomic writes via a temporary file and rename, so a reader or a
// crash never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

func (d *Device) cachePath() string {
	dir := d.opts.PipelineCacheDir
	if dir == "-" {
		return ""
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "" // no home to cache in: run uncached
		}
		dir = filepath.Join(base, "neti", "pipelines")
	}
	return filepath.Join(dir, cacheFileName(d.info))
}

// openPipelineCache creates the VkPipelineCache, seeded from disk when a
// valid file exists. Every problem with the file is a cache miss.
func (d *Device) openPipelineCache() {
	c := &d.cache
	c.stats.Path = d.cachePath()
	var payload []byte
	if c.stats.Path != "" {
		data, err := readCacheFile(c.stats.Path)
		switch {
		case err != nil:
			c.stats.Ignored = err.Error()
		case data != nil:
			payload, err = decodeCacheFile(data, d.cacheKey)
			if err != nil {
				c.stats.Ignored = err.Error()
				payload = nil
			}
		}
	}
	var ptr unsafe.Pointer
	if len(payload) > 0 {
		ptr = unsafe.Pointer(&payload[0])
	}
	r := C.nv_create_pipeline_cache(d.dev, ptr, C.size_t(len(payload)), &c.handle)
	if r != C.VK_SUCCESS && len(payload) > 0 {
		// The driver refused the data despite a matching header: start empty.
		c.stats.Ignored = "driver rejected the data: " + Result(r).Error()
		payload = nil
		r = C.nv_create_pipeline_cache(d.dev, nil, 0, &c.handle)
	}
	if r != C.VK_SUCCESS {
		c.handle = 0 // pipelines are then built uncached
		c.stats.Ignored = "cannot create a pipeline cache: " + Result(r).Error()
		return
	}
	c.loaded = payload
	c.stats.Loaded = len(payload)
}

// SavePipelineCache writes the driver's cache data to disk now (Close does
// it too). Unchanged data is not rewritten.
func (d *Device) SavePipelineCache() error {
	if d.isClosed() {
		return errClosedDevice
	}
	return d.savePipelineCache()
}

func (d *Device) savePipelineCache() error {
	c := &d.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handle == 0 || c.stats.Path == "" {
		return nil
	}
	var size C.size_t
	if r := C.nv_pipeline_cache_data(d.dev, c.handle, &size, nil); r != C.VK_SUCCESS {
		return c.saveFailed(check("pipeline cache size", int32(r)))
	}
	if size == 0 || size > maxCacheFile {
		return nil
	}
	data := make([]byte, int(size))
	if r := C.nv_pipeline_cache_data(d.dev, c.handle, &size, unsafe.Pointer(&data[0])); r != C.VK_SUCCESS {
		return c.saveFailed(check("pipeline cache data", int32(r)))
	}
	data = data[:int(size)]
	if bytes.Equal(data, c.loaded) {
		return nil
	}
	if err := writeFileAtomic(c.stats.Path, encodeCacheFile(data)); err != nil {
		return c.saveFailed(fmt.Errorf("vk: save pipeline cache %s: %w", c.stats.Path, err))
	}
	c.loaded = data
	c.stats.Saved = len(data)
	c.stats.SaveErr = ""
	return nil
}

func (c *pipelineCache) saveFailed(err error) error {
	c.stats.SaveErr = err.Error()
	return err
}

// closePipelineCache saves and destroys the cache. A failed save is kept in
// the stats, not returned: the cache only saves time.
func (d *Device) closePipelineCache() {
	_ = d.savePipelineCache()
	c := &d.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	C.nv_destroy_pipeline_cache(d.dev, c.handle)
	c.handle = 0
}

// PipelineCacheStats reports what the pipeline cache did.
func (d *Device) PipelineCacheStats() CacheStats {
	d.cache.mu.RLock()
	s := d.cache.stats
	d.cache.mu.RUnlock()
	s.Hits, s.Misses = int(d.cache.hits.Load()), int(d.cache.misses.Load())
	return s
}
