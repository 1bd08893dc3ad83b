package tokenizer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// GGUF metadata reader: just enough of the format to load the tokenizer a
// llama.cpp model file embeds. The format (ggml's docs/gguf.md) is a
// little-endian header — magic "GGUF", version, tensor count, key-value
// count — followed by the key-value pairs, then tensor descriptions and
// data, which a tokenizer never needs and this reader never reads.
//
// A Go GGUF reader does resolve here (gpustack/gguf-parser-go), but its only
// entry point is a file path, it boxes every array element in an interface
// (a 150,000-token vocabulary becomes 150,000 allocations), its typed
// getters panic on a type mismatch, and it brings HTTP model fetching and
// estimation code into the module graph; the part needed here is small.

// ggufType is a metadata value's type tag.
type ggufType uint32

const (
	ggufUint8 ggufType = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
)

var ggufTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ggufType) String() string {
	if int(t) < len(ggufTypeNames) {
		return ggufTypeNames[t]
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// fixedSize is the encoded size of a scalar type, 0 for string and array.
func (t ggufType) fixedSize() int {
	switch t {
	case ggufUint8, ggufInt8, ggufBool:
		return 1
	case ggufUint16, ggufInt16:
		return 2
	case ggufUint32, ggufInt32, ggufFloat32:
		return 4
	case ggufUint64, ggufInt64, ggufFloat64:
		return 8
	}
	return 0
}

// ggufValue is one metadata value. Scalars are held in the widest Go type
// of their kind (uint64, int64, float64, bool, string); arrays as
// []string, []int64, []float64, []bool or []ggufValue (arrays of arrays),
// with Elem the element type.
type ggufValue struct {
	Type ggufType
	Elem ggufType // for arrays
	V    any
}

// ggufMeta is a file's key-value metadata.
type ggufMeta struct {
	Version     uint32
	TensorCount uint64
	KV          map[string]ggufValue
}

// ggufMagic is "GGUF" read as a little-endian uint32.
const ggufMagic = 0x46554747

// Bounds on what a file may claim, so a corrupt or hostile header cannot
// make the reader allocate without limit: a real model has a few dozen
// keys, a vocabulary of a few hundred thousand tokens, and merges of a
// similar count.
const (
	ggufMaxKV       = 1 << 16
	ggufMaxString   = 1 << 24 // a chat template is tens of KiB
	ggufMaxArray    = 1 << 24
	ggufMaxDepth    = 4       // arrays of arrays
	ggufMaxMetaSize = 1 << 30 // bytes of metadata read in all
)

var errGGUF = errors.New("not a valid GGUF file")

// readGGUFFile reads the metadata of the GGUF file at path.
func readGGUFFile(path string) (*ggufMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readGGUF(f)
}

// readGGUF reads a GGUF header and its metadata from r, stopping before
// the tensor descriptions. Errors name the key and the byte offset where
// the file went wrong.
func readGGUF(r io.Reader) (*ggufMeta, error) {
	d := &ggufDecoder{r: bufio.NewReaderSize(r, 1<<14)}
	magic, err := d.u32()
	if err != nil {
		return nil, d.fail("magic", err)
	}
	if magic != ggufMagic {
		return nil, fmt.Errorf("%w: magic %q at offset 0, want \"GGUF\"", errGGUF, binary.LittleEndian.AppendUint32(nil, magic))
	}
	m := &ggufMeta{KV: map[string]ggufValue{}}
	if m.Version, err = d.u32(); err != nil {
		return nil, d.fail("version", err)
	}
	if m.Version < 2 || m.Version > 3 {
		// Version 1 (2023) used 32-bit counts and lengths; nothing current writes it.
		return nil, fmt.Errorf("GGUF version %d: %w (versions 2 and 3 are read)", m.Version, errUnsupported)
	}
	if m.TensorCount, err = d.u64(); err != nil {
		return nil, d.fail("tensor count", err)
	}
	n, err := d.u64()
	if err != nil {
		return nil, d.fail("key-value count", err)
	}
	if n > ggufMaxKV {
		return nil, fmt.Errorf("%w: %d key-value pairs at offset 16 (at most %d)", errGGUF, n, ggufMaxKV)
	}
	for i := uint64(0); i < n; i++ {
		at := d.off
		key, err := d.str()
		if err != nil {
			return nil, d.fail(fmt.Sprintf("key %d", i), err)
		}
		t, err := d.u32()
		if err != nil {
			return nil, d.fail("type of "+key, err)
		}
		v, err := d.value(ggufType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("key %q (offset %d): %w", key, at, err)
		}
		if _, dup := m.KV[key]; dup {
			return nil, fmt.Errorf("%w: key %q appears twice (offset %d)", errGGUF, key, at)
		}
		m.KV[key] = v
	}
	return m, nil
}

type ggufDecoder struct {
	r   *bufio.Reader
	off int64 // bytes read so far
	buf [8]byte
}

func (d *ggufDecoder) fail(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends in the %s at offset %d", errGGUF, what, d.off)
	}
	return fmt.Errorf("reading the %s at offset %d: %w", what, d.off, err)
}

func (d *ggufDecoder) read(n int) ([]byte, error) {
	if d.off+int64(n) > ggufMaxMetaSize {
		return nil, fmt.Errorf("%w: metadata larger than %d MiB", errGGUF, ggufMaxMetaSize>>20)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, err
	}
	d.off += int64(n)
	return b, nil
}

func (d *ggufDecoder) u32() (uint32, error) {
	b, err := d.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *ggufDecoder) u64() (uint64, error) {
	b, err := d.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (d *ggufDecoder) str() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > ggufMaxString {
		return "", fmt.Errorf("%w: string of %d bytes at offset %d (at most %d)", errGGUF, n, d.off-8, ggufMaxString)
	}
	if d.off+int64(n) > ggufMaxMetaSize {
		return "", fmt.Errorf("%w: metadata larger than %d MiB", errGGUF, ggufMaxMetaSize>>20)
	}
	// Long strings are read in bounded steps: a length past the end of a
	// short file fails there, never allocating what the header claims.
	const step = 1 << 16
	b := make([]byte, min(int(n), step))
	if _, err := io.ReadFull(d.r, b); err != nil {
		return "", err
	}
	d.off += int64(len(b))
	for rem := int(n) - len(b); rem > 0; {
		chunk := make([]byte, min(rem, step))
		if _, err := io.ReadFull(d.r, chunk); err != nil {
			return "", err
		}
		b = append(b, chunk...)
		d.off += int64(len(chunk))
		rem -= len(chunk)
	}
	return string(b), nil
}

// scalar reads one value of a fixed-size type.
func (d *ggufDecoder) scalar(t ggufType) (any, error) {
	b, err := d.read(t.fixedSize())
	if err != nil {
		return nil, err
	}
	switch t {
	case ggufUint8:
		return uint64(b[0]), nil
	case ggufInt8:
		return int64(int8(b[0])), nil
	case ggufUint16:
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case ggufInt16:
		return int64(int16(binary.LittleEndian.Uint16(b))), nil
	case ggufUint32:
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case ggufInt32:
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	case ggufFloat32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	case ggufBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("%w: bool byte %d at offset %d", errGGUF, b[0], d.off-1)
		}
		return b[0] == 1, nil
	case ggufUint64:
		return binary.LittleEndian.Uint64(b), nil
	case ggufInt64:
		return int64(binary.LittleEndian.Uint64(b)), nil
	case ggufFloat64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	}
	return nil, fmt.Errorf("%w: value type %d", errGGUF, uint32(t))
}

func (d *ggufDecoder) value(t ggufType, depth int) (ggufValue, error) {
	switch {
	case t == ggufString:
		s, err := d.str()
		if err != nil {
			return ggufValue{}, d.fail("string", err)
		}
		return ggufValue{Type: t, V: s}, nil
	case t == ggufArray:
		return d.array(depth)
	case t.fixedSize() > 0:
		v, err := d.scalar(t)
		if err != nil {
			return ggufValue{}, d.fail(t.String(), err)
		}
		return ggufValue{Type: t, V: v}, nil
	}
	return ggufValue{}, fmt.Errorf("%w: unknown value type %d at offset %d", errGGUF, uint32(t), d.off-4)
}

func (d *ggufDecoder) array(depth int) (ggufValue, error) {
	if depth >= ggufMaxDepth {
		return ggufValue{}, fmt.Errorf("%w: arrays nested deeper than %d at offset %d", errGGUF, ggufMaxDepth, d.off)
	}
	et, err := d.u32()
	if err != nil {
		return ggufValue{}, d.fail("array type", err)
	}
	elem := ggufType(et)
	n, err := d.u64()
	if err != nil {
		return ggufValue{}, d.fail("array length", err)
	}
	if n > ggufMaxArray {
		return ggufValue{}, fmt.Errorf("%w: array of %d elements at offset %d (at most %d)", errGGUF, n, d.off-8, ggufMaxArray)
	}
	// Preallocate no more than what a short, hostile file could back.
	capHint := int(min(n, 1<<12))
	out := ggufValue{Type: ggufArray, Elem: elem}
	switch {
	case elem == ggufString:
		vs := make([]string, 0, capHint)
		for i := uint64(0); i < n; i++ {
			s, err := d.str()
			if err != nil {
				return ggufValue{}, d.fail(fmt.Sprintf("string %d of an array", i), err)
			}
			vs = append(vs, s)
		}
		out.V = vs
	case elem == ggufArray:
		vs := make([]ggufValue, 0, capHint)
		for i := uint64(0); i < n; i++ {
			v, err := d.array(depth + 1)
			if err != nil {
				return ggufValue{}, err
			}
			vs = append(vs, v)
		}
		out.V = vs
	case elem == ggufBool:
		vs := make([]bool, 0, capHint)
		for i := uint64(0); i < n; i++ {
			v, err := d.scalar(elem)
			if err != nil {
				return ggufValue{}, d.fail("bool array", err)
			}
			vs = append(vs, v.(bool))
		}
		out.V = vs
	case elem == ggufFloat32 || elem == ggufFloat64:
		vs := make([]float64, 0, capHint)
		for i := uint64(0); i < n; i++ {
			v, err := d.scalar(elem)
			if err != nil {
				return ggufValue{}, d.fail(elem.String()+" array", err)
			}
			vs = append(vs, v.(float64))
		}
		out.V = vs
	case elem.fixedSize() > 0:
		// Integers of every width as int64; a uint64 above MaxInt64 is
		// no token id or type and is refused.
		vs := make([]int64, 0, capHint)
		for i := uint64(0); i < n; i++ {
			v, err := d.scalar(elem)
			if err != nil {
				return ggufValue{}, d.fail(elem.String()+" array", err)
			}
			switch x := v.(type) {
			case int64:
				vs = append(vs, x)
			case uint64:
				if x > math.MaxInt64 {
					return ggufValue{}, fmt.Errorf("%w: uint64 %d out of range at offset %d", errGGUF, x, d.off-8)
				}
				vs = append(vs, int64(x))
			}
		}
		out.V = vs
	default:
		return ggufValue{}, fmt.Errorf("%w: unknown array element type %d at offset %d", errGGUF, et, d.off-12)
	}
	return out, nil
}

// Typed getters: each names the key and what it holds when the type is
// not the one wanted.

func (m *ggufMeta) str(key string) (string, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.V.(string)
	if !isStr {
		return "", true, fmt.Errorf("%s is a %s, want a string", key, v.Type)
	}
	return s, true, nil
}

func (m *ggufMeta) boolean(key string) (bool, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return false, false, nil
	}
	b, isBool := v.V.(bool)
	if !isBool {
		return false, true, fmt.Errorf("%s is a %s, want a bool", key, v.Type)
	}
	return b, true, nil
}

// integer reads an integer scalar of any width.
func (m *ggufMeta) integer(key string) (int64, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return 0, false, nil
	}
	switch x := v.V.(type) {
	case int64:
		return x, true, nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true, nil
		}
	}
	return 0, true, fmt.Errorf("%s is a %s, want an integer", key, v.Type)
}

func (m *ggufMeta) strings(key string) ([]string, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return nil, false, nil
	}
	s, isStrs := v.V.([]string)
	if !isStrs {
		return nil, true, fmt.Errorf("%s is %s, want an array of strings", key, v.describe())
	}
	return s, true, nil
}

func (m *ggufMeta) floats(key string) ([]float64, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return nil, false, nil
	}
	switch x := v.V.(type) {
	case []float64:
		return x, true, nil
	case []int64: // llama.cpp accepts int32 scores too
		out := make([]float64, len(x))
		for i, n := range x {
			out[i] = float64(n)
		}
		return out, true, nil
	}
	return nil, true, fmt.Errorf("%s is %s, want an array of numbers", key, v.describe())
}

func (m *ggufMeta) ints(key string) ([]int64, bool, error) {
	v, ok := m.KV[key]
	if !ok {
		return nil, false, nil
	}
	x, isInts := v.V.([]int64)
	if !isInts {
		return nil, true, fmt.Errorf("%s is %s, want an array of integers", key, v.describe())
	}
	return x, true, nil
}

func (v ggufValue) describe() string {
	if v.Type == ggufArray {
		return "an array of " + v.Elem.String()
	}
	return "a " + v.Type.String()
}
