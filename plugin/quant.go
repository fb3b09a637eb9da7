package plugin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Row quantisation used by the compact form.
//
// Each row r of a matrix is stored as integers q with x ≈ base + q·step[r],
// where base is 0 or the anchor initialisation. The step is the row's RMS
// divided by a per-tensor resolution k (and never finer than the int16 range
// allows), rounded to float32 so encoder and decoder use the same number.
// Choosing the step from the RMS rather than the row maximum makes the error
// independent of outliers; the integers are then zigzag-coded and split into
// a low-byte and a high-byte plane, which DEFLATE compresses close to their
// entropy (a few bits above log2(k)), so the file pays for resolution only
// where it is used.

// quantizeRows returns the per-row steps and zigzag-coded integers of data
// minus base (base may be nil).
func quantizeRows(data, base []float32, cols int, k float64) (steps []float32, codes []uint16) {
	rows := len(data) / cols
	steps = make([]float32, rows)
	codes = make([]uint16, len(data))
	for r := 0; r < rows; r++ {
		var ss, mx float64
		for j := 0; j < cols; j++ {
			v := rowDelta(data, base, r*cols+j)
			ss += v * v
			mx = math.Max(mx, math.Abs(v))
		}
		if mx == 0 {
			continue // step 0: the row is exactly its base
		}
		step := math.Sqrt(ss/float64(cols)) / k
		// Keep |q| <= 32767 so codes fit 16 bits.
		step = math.Max(step, mx/32767)
		s32 := float32(step)
		for float64(s32) < mx/32767 { // float32 rounding went below the bound
			s32 = math.Nextafter32(s32, float32(math.Inf(1)))
		}
		steps[r] = s32
		for j := 0; j < cols; j++ {
			q := math.Round(rowDelta(data, base, r*cols+j) / float64(s32))
			codes[r*cols+j] = zigzag(int32(q))
		}
	}
	return steps, codes
}

func rowDelta(data, base []float32, i int) float64 {
	if base == nil {
		return float64(data[i])
	}
	return float64(data[i]) - float64(base[i])
}

// dequantizeRows inverts quantizeRows.
func dequantizeRows(steps []float32, codes []uint16, base []float32, cols int) []float32 {
	out := make([]float32, len(codes))
	for i, c := range codes {
		v := float64(unzigzag(c)) * float64(steps[i/cols])
		if base != nil {
			v += float64(base[i])
		}
		out[i] = float32(v)
	}
	return out
}

func zigzag(q int32) uint16 { return uint16(uint32(q<<1) ^ uint32(q>>31)) }

func unzigzag(z uint16) int32 { return int32(z>>1) ^ -int32(z&1) }

// packPlanes lays codes out as all low bytes, then all high bytes: the high
// plane is almost all zero and compresses to little.
func packPlanes(codes []uint16) []byte {
	n := len(codes)
	b := make([]byte, 2*n)
	for i, c := range codes {
		b[i] = byte(c)
		b[n+i] = byte(c >> 8)
	}
	return b
}

func unpackPlanes(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("quantised data has odd length %d", len(b))
	}
	n := len(b) / 2
	codes := make([]uint16, n)
	for i := range codes {
		codes[i] = uint16(b[i]) | uint16(b[n+i])<<8
	}
	return codes, nil
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
