package plugin

import (
	"encoding/binary"
	"fmt"
)

// maxMsgDepth bounds nesting in a payload; the format itself nests 4 deep.
const maxMsgDepth = 32

// scanMsgpack walks one msgpack value spanning all of b without decoding it
// and checks every length against the bytes left. The reflection decoder
// sizes slices from the length a file declares before reading elements, so
// this check is what keeps a hostile length (say 2^32 shape entries in a
// 100-byte file) from turning into a huge allocation; it also bounds nesting
// depth. Each element takes at least one byte, so afterwards no container
// can claim more elements than the payload has bytes.
func scanMsgpack(b []byte) error {
	pos := 0
	// pending[i] is how many values the open container at depth i still
	// holds; the outermost entry is the single top-level value.
	pending := []int{1}
	for len(pending) > 0 {
		if pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
			continue
		}
		pending[len(pending)-1]--
		if pos >= len(b) {
			return fmt.Errorf("msgpack: data ends at byte %d inside a value", pos)
		}
		c := b[pos]
		pos++
		var n, children int // n: raw bytes to skip; children: nested values
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f: // fixmap
			children = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			children = int(c & 0x0f)
		case c <= 0xbf: // fixstr
			n = int(c & 0x1f)
		case c == 0xc0, c == 0xc2, c == 0xc3: // nil, false, true
		case c == 0xc4, c == 0xd9: // bin8, str8
			n, pos, err = readLen(b, pos, 1)
		case c == 0xc5, c == 0xda: // bin16, str16
			n, pos, err = readLen(b, pos, 2)
		case c == 0xc6, c == 0xdb: // bin32, str32
			n, pos, err = readLen(b, pos, 4)
		case c == 0xc7: // ext8: length, type, data
			n, pos, err = readLen(b, pos, 1)
			n++
		case c == 0xc8:
			n, pos, err = readLen(b, pos, 2)
			n++
		case c == 0xc9:
			n, pos, err = readLen(b, pos, 4)
			n++
		case c == 0xca:
			n = 4
		case c == 0xcb:
			n = 8
		case c == 0xcc, c == 0xd0:
			n = 1
		case c == 0xcd, c == 0xd1:
			n = 2
		case c == 0xce, c == 0xd2:
			n = 4
		case c == 0xcf, c == 0xd3:
			n = 8
		case c >= 0xd4 && c <= 0xd8: // fixext: type byte + 1,2,4,8,16
			n = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			children, pos, err = readLen(b, pos, 2)
		case c == 0xdd:
			children, pos, err = readLen(b, pos, 4)
		case c == 0xde:
			children, pos, err = readLen(b, pos, 2)
			children *= 2
		case c == 0xdf:
			children, pos, err = readLen(b, pos, 4)
			children *= 2
		default:
			return fmt.Errorf("msgpack: invalid type byte 0x%02x at %d", c, pos-1)
		}
		if err != nil {
			return err
		}
		if n > len(b)-pos {
			return fmt.Errorf("msgpack: value at %d claims %d bytes, only %d left", pos, n, len(b)-pos)
		}
		pos += n
		if children > 0 {
			if children > len(b)-pos {
				return fmt.Errorf("msgpack: container at %d claims %d elements, only %d bytes left", pos, children, len(b)-pos)
			}
			if len(pending) >= maxMsgDepth {
				return fmt.Errorf("msgpack: nesting deeper than %d", maxMsgDepth)
			}
			pending = append(pending, children)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("msgpack: %d stray bytes after the value", len(b)-pos)
	}
	return nil
}

// readLen reads a big-endian length of size bytes at pos.
func readLen(b []byte, pos, size int) (int, int, error) {
	if size > len(b)-pos {
		return 0, pos, fmt.Errorf("msgpack: length at %d cut off", pos)
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(b[pos])
	case 2:
		v = uint64(binary.BigEndian.Uint16(b[pos:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(b[pos:]))
	}
	if v > uint64(len(b)) { // also keeps 2*v from overflowing on 32-bit
		return 0, pos, fmt.Errorf("msgpack: length %d at %d exceeds the payload", v, pos)
	}
	return int(v), pos + size, nil
}
