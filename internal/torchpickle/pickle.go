package torchpickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Intermediate values. Containers are pointers so that the memo, which
// Python shares across the whole pickle, aliases them the way Python does,
// and so that cycles can be found when the tree is converted.
type (
	pGlobal struct{ name string } // "module.Name", already allow-listed
	pList   struct {
		items []any
		set   bool
	}
	pTuple  struct{ items []any }
	pDict   struct{ m map[string]any }
	pObject struct {
		class string
		args  []any
		state any
	}
	pStorage struct {
		key      string
		dtype    string
		location string
		numel    int64
		entry    *storageEntry
	}
)

// storageEntry is one data/<key> zip entry.
type storageEntry struct {
	off, size int64  // location in the archive reader
	data      []byte // whole entry, read once; nil in lazy mode
}

// builtinGlobals are the globals torch.save writes for state dicts and
// tensors. Each maps to a harmless constructor below.
var builtinGlobals = map[string]bool{
	"collections.OrderedDict":         true,
	"torch._utils._rebuild_tensor_v2": true,
	"torch._utils._rebuild_parameter": true,
	"builtins.set":                    true,
	"__builtin__.set":                 true,
	"torch.FloatStorage":              true,
	"torch.HalfStorage":               true,
	"torch.BFloat16Storage":           true,
	"torch.DoubleStorage":             true,
	"torch.LongStorage":               true,
	"torch.IntStorage":                true,
	"torch.ByteStorage":               true,
}

// lenWidth is the size of the length prefix of each string opcode.
var lenWidth = map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8, 'T': 4, 'U': 1, 'B': 4, 'C': 1, 0x8e: 8}

// storageDTypes maps storage classes to element types.
var storageDTypes = map[string]string{
	"torch.FloatStorage":    "F32",
	"torch.HalfStorage":     "F16",
	"torch.BFloat16Storage": "BF16",
	"torch.DoubleStorage":   "F64",
	"torch.LongStorage":     "I64",
	"torch.IntStorage":      "I32",
	"torch.ByteStorage":     "U8",
}

type unpickler struct {
	data      []byte
	pos       int
	stack     []any
	metastack [][]any
	memo      map[uint32]any
	arc       *archive
	lazy      bool
	extra     map[string]bool
	storages  map[string]*storageEntry
	copied    int64 // bytes materialised for strided tensors
	copyLimit int64
}

func newUnpickler(data []byte, a *archive, opts Options) *unpickler {
	u := &unpickler{
		data:      data,
		memo:      map[uint32]any{},
		arc:       a,
		lazy:      opts.Lazy,
		extra:     map[string]bool{},
		storages:  map[string]*storageEntry{},
		copyLimit: 2*a.size + 64<<20,
	}
	for _, c := range opts.AllowClasses {
		u.extra[c] = true
	}
	return u
}

var errTruncated = errors.New("pickle data ends early (truncated)")

func (u *unpickler) next(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, errTruncated
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) nextLen(width int) (int, error) {
	b, err := u.next(width)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(b[0])
	case 4:
		n = uint64(binary.LittleEndian.Uint32(b))
	case 8:
		n = binary.LittleEndian.Uint64(b)
	}
	// A length can never exceed what is left, which also bounds allocation.
	if n > uint64(len(u.data)-u.pos) {
		return 0, fmt.Errorf("length %d runs past the end of the pickle (truncated?)", n)
	}
	return int(n), nil
}

func (u *unpickler) line() (string, error) {
	const maxLine = 1024
	end := u.pos
	for end < len(u.data) && u.data[end] != '\n' {
		end++
		if end-u.pos > maxLine {
			return "", fmt.Errorf("GLOBAL name longer than %d bytes", maxLine)
		}
	}
	if end >= len(u.data) {
		return "", errTruncated
	}
	s := string(u.data[u.pos:end])
	u.pos = end + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

func (u *unpickler) popMark() ([]any, error) {
	if len(u.metastack) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	items := u.stack
	u.stack = u.metastack[len(u.metastack)-1]
	u.metastack = u.metastack[:len(u.metastack)-1]
	return items, nil
}

func (u *unpickler) popN(n int) ([]any, error) {
	if len(u.stack) < n {
		return nil, errors.New("stack underflow")
	}
	items := append([]any(nil), u.stack[len(u.stack)-n:]...)
	u.stack = u.stack[:len(u.stack)-n]
	return items, nil
}

func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			return nil, fmt.Errorf("no STOP opcode before byte %d: %w", u.pos, errTruncated)
		}
		at := u.pos
		op := u.data[u.pos]
		u.pos++
		if op == '.' { // STOP
			v, err := u.pop()
			if err != nil {
				return nil, fmt.Errorf("STOP at byte %d: %w", at, err)
			}
			return v, nil
		}
		if err := u.step(op); err != nil {
			return nil, fmt.Errorf("%s at byte %d: %w", opName(op), at, err)
		}
	}
}

func (u *unpickler) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		b, err := u.next(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return fmt.Errorf("pickle protocol %d is not supported", b[0])
		}
	case 0x95: // FRAME: framing only, the data follows inline
		_, err := u.next(8)
		return err
	case '(': // MARK
		u.metastack = append(u.metastack, u.stack)
		u.stack = nil
	case '}':
		u.push(&pDict{m: map[string]any{}})
	case ']':
		u.push(&pList{})
	case ')':
		u.push(&pTuple{})
	case 0x8f: // EMPTY_SET
		u.push(&pList{set: true})
	case 'd', 'l', 't', 0x91: // DICT, LIST, TUPLE, FROZENSET
		items, err := u.popMark()
		if err != nil {
			return err
		}
		switch op {
		case 'd':
			d := &pDict{m: map[string]any{}}
			if err := d.setItems(items); err != nil {
				return err
			}
			u.push(d)
		case 'l':
			u.push(&pList{items: items})
		case 't':
			u.push(&pTuple{items: items})
		default:
			u.push(&pList{items: items, set: true})
		}
	case 0x85, 0x86, 0x87: // TUPLE1..3
		items, err := u.popN(int(op-0x85) + 1)
		if err != nil {
			return err
		}
		u.push(&pTuple{items: items})
	case 'a', 'e', 0x90: // APPEND, APPENDS, ADDITEMS
		var items []any
		if op == 'a' {
			v, err := u.pop()
			if err != nil {
				return err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pList)
		if !ok || l.set != (op == 0x90) {
			return fmt.Errorf("target is %s", typeName(t))
		}
		l.items = append(l.items, items...)
	case 's', 'u': // SETITEM, SETITEMS
		var items []any
		if op == 's' {
			var err error
			if items, err = u.popN(2); err != nil {
				return err
			}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pDict)
		if !ok {
			return fmt.Errorf("target is %s, not a dict", typeName(t))
		}
		return d.setItems(items)
	case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes
		n, err := u.nextLen(lenWidth[op])
		if err != nil {
			return err
		}
		b, err := u.next(n)
		if err != nil {
			return err
		}
		if op == 'B' || op == 'C' || op == 0x8e {
			u.push(append([]byte(nil), b...))
		} else {
			u.push(string(b))
		}
	case 'J': // BININT
		b, err := u.next(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case 'K': // BININT1
		b, err := u.next(1)
		if err != nil {
			return err
		}
		u.push(int64(b[0]))
	case 'M': // BININT2
		b, err := u.next(2)
		if err != nil {
			return err
		}
		u.push(int64(binary.LittleEndian.Uint16(b)))
	case 0x8a, 0x8b: // LONG1, LONG4
		width := 1
		if op == 0x8b {
			width = 4
		}
		n, err := u.nextLen(width)
		if err != nil {
			return err
		}
		b, err := u.next(n)
		if err != nil {
			return err
		}
		v, err := decodeLong(b)
		if err != nil {
			return err
		}
		u.push(v)
	case 'G': // BINFLOAT (big-endian)
		b, err := u.next(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 0x88:
		u.push(true)
	case 0x89:
		u.push(false)
	case 'N':
		u.push(nil)
	case 'q', 'r', 0x94: // BINPUT, LONG_BINPUT, MEMOIZE
		v, err := u.top()
		if err != nil {
			return err
		}
		var idx uint32
		switch op {
		case 'q':
			b, err := u.next(1)
			if err != nil {
				return err
			}
			idx = uint32(b[0])
		case 'r':
			b, err := u.next(4)
			if err != nil {
				return err
			}
			idx = binary.LittleEndian.Uint32(b)
		default:
			idx = uint32(len(u.memo))
		}
		u.memo[idx] = v
	case 'h', 'j': // BINGET, LONG_BINGET
		var idx uint32
		if op == 'h' {
			b, err := u.next(1)
			if err != nil {
				return err
			}
			idx = uint32(b[0])
		} else {
			b, err := u.next(4)
			if err != nil {
				return err
			}
			idx = binary.LittleEndian.Uint32(b)
		}
		v, ok := u.memo[idx]
		if !ok {
			return fmt.Errorf("memo entry %d was never stored", idx)
		}
		u.push(v)
	case '0': // POP (pops a MARK when the current frame is empty, as Python does)
		if len(u.stack) > 0 {
			u.stack = u.stack[:len(u.stack)-1]
			return nil
		}
		_, err := u.popMark()
		return err
	case '1': // POP_MARK
		_, err := u.popMark()
		return err
	case '2': // DUP
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)
	case 'c': // GLOBAL
		module, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		g, err := u.global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case 0x93: // STACK_GLOBAL
		items, err := u.popN(2)
		if err != nil {
			return err
		}
		module, ok1 := items[0].(string)
		name, ok2 := items[1].(string)
		if !ok1 || !ok2 {
			return errors.New("module and name must be strings")
		}
		g, err := u.global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case 'R', 0x81: // REDUCE, NEWOBJ
		items, err := u.popN(2)
		if err != nil {
			return err
		}
		args, ok := items[1].(*pTuple)
		if !ok {
			return fmt.Errorf("arguments are %s, not a tuple", typeName(items[1]))
		}
		g, ok := items[0].(pGlobal)
		if !ok {
			return fmt.Errorf("cannot call %s", typeName(items[0]))
		}
		v, err := u.call(g.name, args.items, op == 0x81)
		if err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
		u.push(v)
	case 'b': // BUILD
		state, err := u.pop()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case *pObject:
			upd, isDict := state.(*pDict)
			if !isDict {
				t.state = state
				return nil
			}
			// Python copies a dict state into the instance's own __dict__,
			// so later BUILDs must not write into the (memoised) state.
			own, ok := t.state.(*pDict)
			if !ok {
				own = &pDict{m: make(map[string]any, len(upd.m))}
				t.state = own
			}
			for k, v := range upd.m {
				own.m[k] = v
			}
		case *pDict, *Tensor:
			// An OrderedDict's state is torch's _metadata version record and
			// a tensor's is subclass bookkeeping; neither is data.
		default:
			return fmt.Errorf("cannot BUILD %s", typeName(t))
		}
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return err
		}
		st, err := u.persistent(pid)
		if err != nil {
			return err
		}
		u.push(st)
	default:
		return errors.New("opcode is not supported by this reader")
	}
	return nil
}

// global is where the allow-list is enforced: nothing else on the stack
// can ever refer to a name that did not pass here.
func (u *unpickler) global(module, name string) (pGlobal, error) {
	full := module + "." + name
	if builtinGlobals[full] || u.extra[full] {
		return pGlobal{name: full}, nil
	}
	return pGlobal{}, fmt.Errorf("global %s is not on the allow-list: refusing to load (the file may be malicious)", full)
}

func (u *unpickler) call(name string, args []any, newobj bool) (any, error) {
	switch name {
	case "collections.OrderedDict":
		d := &pDict{m: map[string]any{}}
		if len(args) == 0 {
			return d, nil
		}
		if len(args) != 1 || newobj {
			return nil, fmt.Errorf("expected at most one iterable of pairs, got %d arguments", len(args))
		}
		var pairs []any
		switch it := args[0].(type) {
		case *pList:
			pairs = it.items
		case *pTuple:
			pairs = it.items
		default:
			return nil, fmt.Errorf("argument is %s, not a list of pairs", typeName(args[0]))
		}
		for _, p := range pairs {
			kv, ok := p.(*pTuple)
			if !ok || len(kv.items) != 2 {
				return nil, errors.New("item is not a (key, value) pair")
			}
			if err := d.setItems(kv.items); err != nil {
				return nil, err
			}
		}
		return d, nil
	case "builtins.set", "__builtin__.set":
		s := &pList{set: true}
		if len(args) == 0 {
			return s, nil
		}
		if len(args) != 1 || newobj {
			return nil, fmt.Errorf("expected at most one iterable, got %d arguments", len(args))
		}
		switch it := args[0].(type) {
		case *pList:
			s.items = append(s.items, it.items...)
		case *pTuple:
			s.items = append(s.items, it.items...)
		default:
			return nil, fmt.Errorf("argument is %s, not a list", typeName(args[0]))
		}
		return s, nil
	case "torch._utils._rebuild_tensor_v2":
		if newobj {
			break
		}
		return u.rebuildTensor(args)
	case "torch._utils._rebuild_parameter":
		if newobj {
			break
		}
		if len(args) < 2 {
			return nil, fmt.Errorf("expected (data, requires_grad, hooks), got %d arguments", len(args))
		}
		t, ok := args[0].(*Tensor)
		rg, ok2 := args[1].(bool)
		if !ok || !ok2 {
			return nil, fmt.Errorf("expected (tensor, bool, ...), got (%s, %s, ...)", typeName(args[0]), typeName(args[1]))
		}
		p := *t // a Parameter is a new object that shares the data
		p.RequiresGrad = rg
		return &p, nil
	default:
		if u.extra[name] {
			return &pObject{class: name, args: args}, nil
		}
	}
	return nil, errors.New("this global cannot be called here")
}

func (u *unpickler) persistent(pid any) (*pStorage, error) {
	t, ok := pid.(*pTuple)
	if !ok || len(t.items) != 5 {
		return nil, fmt.Errorf("persistent id is %s, not ('storage', type, key, location, numel)", typeName(pid))
	}
	tag, _ := t.items[0].(string)
	cls, _ := t.items[1].(pGlobal)
	key, okKey := t.items[2].(string)
	loc, okLoc := t.items[3].(string)
	numel, okN := t.items[4].(int64)
	dtype := storageDTypes[cls.name]
	if tag != "storage" || dtype == "" || !okKey || !okLoc || !okN || numel < 0 {
		return nil, errors.New("persistent id is not ('storage', <torch.*Storage>, key, location, numel)")
	}
	e, err := u.storage(key)
	if err != nil {
		return nil, err
	}
	if es := int64(elemSize(dtype)); numel > e.size/es {
		return nil, fmt.Errorf("storage %q claims %d %s elements (%d bytes) but its zip entry holds %d bytes", key, numel, dtype, numel*es, e.size)
	}
	return &pStorage{key: key, dtype: dtype, location: loc, numel: numel, entry: e}, nil
}

func (u *unpickler) storage(key string) (*storageEntry, error) {
	if e, ok := u.storages[key]; ok {
		return e, nil
	}
	name := u.arc.prefix + "data/" + key
	off, n, err := u.arc.span(name)
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", key, err)
	}
	e := &storageEntry{off: off, size: n}
	if !u.lazy {
		if e.data, err = u.arc.read(name, n); err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
	}
	u.storages[key] = e
	return e, nil
}

func (d *pDict) setItems(items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("odd number (%d) of keys and values", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		k, err := dictKey(items[i])
		if err != nil {
			return err
		}
		d.m[k] = items[i+1]
	}
	return nil
}

// dictKey turns a Python dict key into the map key of the result tree.
func dictKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case bool:
		if k {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "None", nil
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64), nil
	case *pTuple:
		parts := make([]string, len(k.items))
		for i, it := range k.items {
			if _, nested := it.(*pTuple); nested {
				return "", errors.New("nested tuple dict keys are not supported")
			}
			s, err := dictKey(it)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + strings.Join(parts, ", ") + ")", nil
	}
	return "", fmt.Errorf("dict key of type %s is not supported", typeName(k))
}

func decodeLong(b []byte) (int64, error) {
	if len(b) > 8 {
		return 0, fmt.Errorf("integer of %d bytes does not fit in int64", len(b))
	}
	if len(b) == 0 {
		return 0, nil
	}
	var buf [8]byte
	copy(buf[:], b)
	if b[len(b)-1]&0x80 != 0 { // sign-extend two's complement
		for i := len(b); i < 8; i++ {
			buf[i] = 0xff
		}
	}
	return int64(binary.LittleEndian.Uint64(buf[:])), nil
}

// convert turns intermediate values into the public tree, refusing cycles
// (which a hand-made pickle can build through the memo) and depth beyond
// maxDepth, so callers can walk the result without guarding against either.
func convert(v any, done map[any]any, active map[any]bool, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("object tree nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil, string, []byte, int64, float64, bool, *Tensor:
		return v, nil
	case pGlobal:
		return &Object{Class: x.name}, nil
	case *pStorage:
		return nil, fmt.Errorf("storage %q is used outside a tensor, which is not supported", x.key)
	}
	if r, ok := done[v]; ok {
		return r, nil
	}
	if active[v] {
		return nil, errors.New("object refers to itself (recursive structure)")
	}
	active[v] = true
	defer delete(active, v)
	var out any
	switch x := v.(type) {
	case *pList:
		l, err := convertSlice(x.items, done, active, depth)
		if err != nil {
			return nil, err
		}
		out = l
	case *pTuple:
		l, err := convertSlice(x.items, done, active, depth)
		if err != nil {
			return nil, err
		}
		out = l
	case *pDict:
		m := make(map[string]any, len(x.m))
		for k, e := range x.m {
			c, err := convert(e, done, active, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		out = m
	case *pObject:
		o := &Object{Class: x.class}
		var err error
		if o.Args, err = convertSlice(x.args, done, active, depth); err != nil {
			return nil, err
		}
		if o.State, err = convert(x.state, done, active, depth+1); err != nil {
			return nil, err
		}
		out = o
	default:
		return nil, fmt.Errorf("internal: unexpected value %T", v)
	}
	done[v] = out
	return out, nil
}

func convertSlice(items []any, done map[any]any, active map[any]bool, depth int) ([]any, error) {
	out := make([]any, len(items))
	for i, e := range items {
		c, err := convert(e, done, active, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return "a string"
	case []byte:
		return "bytes"
	case int64:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case *pList:
		if x.set {
			return "a set"
		}
		return "a list"
	case *pTuple:
		return "a tuple"
	case *pDict:
		return "a dict"
	case pGlobal:
		return "global " + x.name
	case *pObject:
		return "an instance of " + x.class
	case *pStorage:
		return "a storage"
	case *Tensor:
		return "a tensor"
	}
	return fmt.Sprintf("%T", v)
}

var opNames = map[byte]string{
	0x80: "PROTO", 0x95: "FRAME", '(': "MARK", '.': "STOP", '}': "EMPTY_DICT", ']': "EMPTY_LIST",
	')': "EMPTY_TUPLE", 0x8f: "EMPTY_SET", 'd': "DICT", 'l': "LIST", 't': "TUPLE", 0x91: "FROZENSET",
	0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3", 'a': "APPEND", 'e': "APPENDS", 0x90: "ADDITEMS",
	's': "SETITEM", 'u': "SETITEMS", 'X': "BINUNICODE", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8",
	'T': "BINSTRING", 'U': "SHORT_BINSTRING", 'B': "BINBYTES", 'C': "SHORT_BINBYTES", 0x8e: "BINBYTES8",
	'J': "BININT", 'K': "BININT1", 'M': "BININT2", 0x8a: "LONG1", 0x8b: "LONG4", 'G': "BINFLOAT",
	0x88: "NEWTRUE", 0x89: "NEWFALSE", 'N': "NONE", 'q': "BINPUT", 'r': "LONG_BINPUT", 0x94: "MEMOIZE",
	'h': "BINGET", 'j': "LONG_BINGET", '0': "POP", '1': "POP_MARK", '2': "DUP", 'c': "GLOBAL",
	0x93: "STACK_GLOBAL", 'R': "REDUCE", 0x81: "NEWOBJ", 'b': "BUILD", 'Q': "BINPERSID",
}

func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}
