package vk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// roundTrip writes random bytes at an offset, reads them back, and checks
// the bytes around the range were left alone.
func roundTrip(t *testing.T, d *Device, size, off, n int64) {
	t.Helper()
	r := newRand(t)
	b := newBuffer(t, d, size)
	if err := b.Fill(0, size&^3, 0xA5A5A5A5); err != nil {
		t.Fatalf("Fill: %v", err)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := b.Write(off, data); err != nil {
		t.Fatalf("Write(%d, %d bytes): %v", off, n, err)
	}
	got := make([]byte, n)
	if err := b.Read(off, got); err != nil {
		t.Fatalf("Read(%d, %d bytes): %v", off, n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("size %d off %d n %d: read back differs at byte %d", size, off, n, firstDiff(got, data))
	}
	whole := make([]byte, size&^3)
	if err := b.Read(0, whole); err != nil {
		t.Fatal(err)
	}
	for i, v := range whole {
		if int64(i) >= off && int64(i) < off+n {
			continue
		}
		if v != 0xA5 {
			t.Fatalf("byte %d outside the written range changed to %#x", i, v)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestBufferRoundTrip(t *testing.T) {
	shared := sharedDevice(t)
	// A second device routes every transfer through a small staging ring,
	// so chunking runs on unified-memory machines too.
	const ring = 4096
	staged := newDevice(t, Options{ForceStaging: true, StagingSize: ring})
	tests := []struct {
		name         string
		size, off, n int64
	}{
		{"one word", 4, 0, 4},
		{"odd size", 13, 0, 13},
		{"odd tail at offset", 13, 5, 8},
		{"offset", 1024, 256, 512},
		{"one byte", 7, 3, 1},
		{"ring chunk exactly", 3 * ring, 0, ring / 2},
		{"several chunks, odd", 5*ring + 3, 1, 5*ring + 1},
		{"unaligned offset across chunks", 4 * ring, 777, 3*ring - 5},
	}
	for _, dev := range []struct {
		name string
		d    *Device
	}{{"default", shared}, {"staged", staged}} {
		for _, tc := range tests {
			t.Run(dev.name+"/"+tc.name, func(t *testing.T) {
				roundTrip(t, dev.d, tc.size, tc.off, tc.n)
			})
		}
	}
	b := newBuffer(t, staged, 16)
	if b.HostVisible() {
		t.Error("ForceStaging buffer is mapped")
	}
	if info := shared.Info(); info.UnifiedMemory != newBuffer(t, shared, 16).HostVisible() {
		t.Errorf("UnifiedMemory %v but buffer mapped %v", info.UnifiedMemory, !info.UnifiedMemory)
	}
}

func TestBufferFill(t *testing.T) {
	for _, staged := range []bool{false, true} {
		d := sharedDevice(t)
		if staged {
			d = newDevice(t, Options{ForceStaging: true, StagingSize: 1024})
		}
		b := newBuffer(t, d, 4099) // odd size: the tail fill uses VK_WHOLE_SIZE
		if err := b.Fill(0, 4099, 0x01020304); err != nil {
			t.Fatal(err)
		}
		if err := b.Fill(8, 16, 0xFFFFFFFF); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4099)
		if err := b.Read(0, got); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4099; i++ {
			want := byte(4 - i%4) // 0x01020304, little-endian
			if i >= 8 && i < 24 {
				want = 0xFF
			}
			if got[i] != want {
				t.Fatalf("staged=%v: byte %d = %#x, want %#x", staged, i, got[i], want)
			}
		}
	}
}

func TestBufferErrors(t *testing.T) {
	d := sharedDevice(t)
	info := d.Info()
	sizes := []struct {
		size int64
		want string
	}{
		{0, "must be positive"},
		{-4, "must be positive"},
		{int64(info.MaxAllocation) + 1, "maxMemoryAllocationSize"},
	}
	for _, tc := range sizes {
		b, err := d.NewBuffer(tc.size)
		if err == nil {
			b.Close()
			t.Errorf("NewBuffer(%d) succeeded", tc.size)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBuffer(%d): %v, want mention of %q", tc.size, err, tc.want)
		}
	}

	b := newBuffer(t, d, 64)
	ops := []struct {
		name string
		err  error
	}{
		{"write past end", b.Write(60, make([]byte, 8))},
		{"write negative offset", b.Write(-1, make([]byte, 1))},
		{"read past end", b.Read(0, make([]byte, 65))},
		{"fill unaligned offset", b.Fill(2, 4, 0)},
		{"fill unaligned size", b.Fill(0, 6, 0)},
		{"fill past end", b.Fill(60, 8, 0)},
	}
	for _, op := range ops {
		if op.err == nil {
			t.Errorf("%s: no error", op.name)
		}
	}
	if err := b.Write(64, nil); err != nil {
		t.Errorf("empty write at the end: %v", err)
	}
	b.Close()
	if err := b.Write(0, []byte{1}); err == nil {
		t.Error("write to a closed buffer succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOutOfDeviceMemoryText(t *testing.T) {
	// Lavapipe allocates whatever it is asked for, so check the wrapping
	// the allocation error goes through.
	err := check("allocate", int32(ErrOutOfDeviceMemory))
	if !errors.Is(err, ErrOutOfDeviceMemory) || !strings.Contains(err.Error(), "out of device memory") {
		t.Errorf("got %v", err)
	}
}

func TestCopyInRecording(t *testing.T) {
	d := sharedDevice(t)
	src := newBuffer(t, d, 256)
	dst := newBuffer(t, d, 256)
	if err := src.Write(0, u32bytes(1, 2, 3, 4, 5, 6, 7, 8)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Fill(0, 256, 0); err != nil {
		t.Fatal(err)
	}
	err := d.Submit(func(r *Recording) error {
		r.Copy(src, 4, dst, 100, 12)
		r.Barrier()
		r.FillRange(dst, 0, 8, 9)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 256)
	if err := dst.Read(0, got); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 256)
	copy(want[100:], u32bytes(2, 3, 4))
	binary.LittleEndian.PutUint32(want[0:], 9)
	binary.LittleEndian.PutUint32(want[4:], 9)
	if !bytes.Equal(got, want) {
		t.Errorf("after copy and fill: %v", got[:112])
	}

	// Errors of Copy and FillRange surface at End.
	bad := []struct {
		name string
		rec  func(r *Recording)
	}{
		{"copy past end", func(r *Recording) { r.Copy(src, 250, dst, 0, 8) }},
		{"overlapping copy", func(r *Recording) { r.Copy(src, 0, src, 4, 8) }},
		{"fill unaligned", func(r *Recording) { r.FillRange(dst, 1, 4, 0) }},
	}
	for _, tc := range bad {
		r := newRecording(t, d)
		tc.rec(r)
		if err := r.End(); err == nil {
			t.Errorf("%s: End succeeded", tc.name)
		}
		if err := r.Submit(); err == nil {
			t.Errorf("%s: Submit after a failed End succeeded", tc.name)
		}
	}
}
