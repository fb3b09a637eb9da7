package vk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPipelineCacheOnDisk(t *testing.T) {
	if shared == nil {
		t.Skipf("no Vulkan device: %v", sharedErr)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, cacheFileName(shared.Info()))

	// First run: nothing on disk; Close saves the cache.
	d1 := newDevice(t, Options{PipelineCacheDir: dir})
	if s := d1.PipelineCacheStats(); s.Path != path || s.Loaded != 0 || s.Ignored != "" {
		t.Fatalf("fresh cache stats %+v, want path %s", s, path)
	}
	k1 := newKernel(t, d1, matmulSpec(8, 8))
	if k1.CacheHit() {
		t.Error("first build reported a cache hit")
	}
	if err := d1.SavePipelineCache(); err != nil {
		t.Fatal(err)
	}
	s1 := d1.PipelineCacheStats()
	if s1.Saved == 0 || s1.SaveErr != "" {
		t.Fatalf("nothing saved: %+v", s1)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// Second run: the file is accepted and handed to the driver.
	d2 := newDevice(t, Options{PipelineCacheDir: dir})
	s2 := d2.PipelineCacheStats()
	if s2.Loaded != len(file)-cacheFileHeader || s2.Ignored != "" {
		t.Fatalf("second device did not load the cache: %+v (file %d bytes)", s2, len(file))
	}
	k2 := newKernel(t, d2, matmulSpec(8, 8))
	s2 = d2.PipelineCacheStats()
	t.Logf("second build: cache hit %v, stats %+v", k2.CacheHit(), s2)
	// Lavapipe (Mesa 22.3) keeps nothing but the 32-byte header in its
	// cache, so a hit can only be asked of drivers that store pipelines and
	// report creation feedback.
	if s1.Saved > vkCacheHeader && s2.Hits+s2.Misses > 0 && (!k2.CacheHit() || s2.Hits != 1) {
		t.Errorf("the driver stores pipelines and reports feedback, but the second build missed: %+v", s2)
	}
	// An unchanged cache is not rewritten.
	before, _ := os.Stat(path)
	if err := d2.SavePipelineCache(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !after.ModTime().Equal(before.ModTime()) && d2.PipelineCacheStats().Saved == 0 {
		t.Error("file rewritten without a save")
	}

	// Corrupt and foreign files are ignored, never an error.
	foreign := append([]byte(nil), file[cacheFileHeader:]...)
	binary.LittleEndian.PutUint32(foreign[8:], 0xdead)
	flipped := append([]byte(nil), file...)
	flipped[len(flipped)-1] ^= 0xff
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte("definitely not a pipeline cache, just some text"), "bad magic"},
		{"truncated", file[:len(file)-3], "truncated"},
		{"bit flip", flipped, "checksum"},
		{"foreign device", encodeCacheFile(foreign), "made for device"},
		{"empty", nil, "too short"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			d := newDevice(t, Options{PipelineCacheDir: dir})
			s := d.PipelineCacheStats()
			if s.Loaded != 0 || !strings.Contains(s.Ignored, tc.want) {
				t.Errorf("stats %+v, want ignored because %q", s, tc.want)
			}
			newKernel(t, d, matmulSpec(8, 8)) // still builds
		})
	}
}

func TestPipelineCacheDisabled(t *testing.T) {
	d := sharedDevice(t)
	if s := d.PipelineCacheStats(); s.Path != "" {
		t.Errorf(`PipelineCacheDir "-" still uses %q`, s.Path)
	}
	if err := d.SavePipelineCache(); err != nil {
		t.Errorf("save of a disabled cache: %v", err)
	}
}

func validCacheFile(key cacheKey, extra int) []byte {
	payload := make([]byte, vkCacheHeader+extra)
	binary.LittleEndian.PutUint32(payload[0:], vkCacheHeader)
	binary.LittleEndian.PutUint32(payload[4:], 1)
	binary.LittleEndian.PutUint32(payload[8:], key.vendor)
	binary.LittleEndian.PutUint32(payload[12:], key.device)
	copy(payload[16:], key.uuid[:])
	return encodeCacheFile(payload)
}

func TestDecodeCacheFile(t *testing.T) {
	key := cacheKey{vendor: 0x10005, device: 7, uuid: [16]byte{1, 2, 3}}
	good := validCacheFile(key, 100)
	mutate := func(f func(p []byte)) []byte {
		payload := append([]byte(nil), good[cacheFileHeader:]...)
		f(payload)
		return encodeCacheFile(payload)
	}
	tests := []struct {
		name string
		data []byte
		want string // "" = accepted
	}{
		{"valid", good, ""},
		{"header only", validCacheFile(key, 0), ""},
		{"short", good[:10], "too short"},
		{"magic", append([]byte("XETIVKPC"), good[8:]...), "bad magic"},
		{"length", good[:len(good)-1], "truncated"},
		{"driver header size", mutate(func(p []byte) { binary.LittleEndian.PutUint32(p, 8) }), "header size"},
		{"driver header too big", mutate(func(p []byte) { binary.LittleEndian.PutUint32(p, 1<<30) }), "header size"},
		{"version", mutate(func(p []byte) { binary.LittleEndian.PutUint32(p[4:], 2) }), "version"},
		{"vendor", mutate(func(p []byte) { binary.LittleEndian.PutUint32(p[8:], 1) }), "made for device"},
		{"uuid", mutate(func(p []byte) { p[20] ^= 1 }), "pipelineCacheUUID"},
		{"tiny payload", encodeCacheFile([]byte{1, 2, 3}), "too short"},
	}
	for _, tc := range tests {
		payload, err := decodeCacheFile(tc.data, key)
		if tc.want == "" {
			if err != nil || !bytes.Equal(payload, tc.data[cacheFileHeader:]) {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeCacheFile(f *testing.F) {
	key := cacheKey{vendor: 0x10005, device: 7, uuid: [16]byte{9}}
	f.Add(validCacheFile(key, 16))
	f.Add(validCacheFile(key, 0))
	f.Add([]byte("NETIVKPC"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		payload, err := decodeCacheFile(data, key)
		if err != nil {
			return
		}
		// Whatever is accepted is a well-formed driver blob for this device.
		if len(payload) < vkCacheHeader || binary.LittleEndian.Uint32(payload[8:]) != key.vendor ||
			!bytes.Equal(encodeCacheFile(payload), data) {
			t.Fatalf("accepted a malformed file of %d bytes", len(data))
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "sub")
	path := filepath.Join(dir, "f")
	for _, data := range [][]byte{[]byte("one"), []byte("second version")} {
		if err := writeFileAtomic(path, data); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v", got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}
