package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
)

// file is what the test reader makes of a GGUF file.
type file struct {
	version uint32
	meta    map[string]any
	tensors []tensorInfo
	data    int64 // offset of the tensor data
	size    int64
}

type tensorInfo struct {
	name   string
	dims   []uint64
	typ    uint32
	offset uint64
}

// reader reads GGUF from the spec, independently of the writer's code.
type reader struct {
	r   *bytes.Reader
	err error
}

func (r *reader) read(v any) {
	if r.err == nil {
		r.err = binary.Read(r.r, binary.LittleEndian, v)
	}
}

func (r *reader) u32() (v uint32) { r.read(&v); return v }
func (r *reader) u64() (v uint64) { r.read(&v); return v }

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil || n > uint64(r.r.Len()) {
		r.err = errors.Join(r.err, fmt.Errorf("string of %d bytes", n))
		return ""
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r.r, b)
	r.err = err
	return string(b)
}

func (r *reader) value(t uint32) any {
	switch t {
	case typeUint32:
		return r.u32()
	case typeInt32:
		return int32(r.u32())
	case typeFloat32:
		return math.Float32frombits(r.u32())
	case typeString:
		return r.str()
	case typeArray:
		et, n := r.u32(), r.u64()
		if n > uint64(r.r.Len()) {
			r.err = fmt.Errorf("array of %d", n)
			return nil
		}
		a := make([]any, n)
		for i := range a {
			a[i] = r.value(et)
		}
		return a
	}
	r.err = fmt.Errorf("value type %d", t)
	return nil
}

func parse(b []byte) (*file, error) {
	r := &reader{r: bytes.NewReader(b)}
	var magic [4]byte
	r.read(&magic)
	if r.err == nil && string(magic[:]) != "GGUF" {
		return nil, fmt.Errorf("magic %q", magic)
	}
	f := &file{version: r.u32(), meta: map[string]any{}, size: int64(len(b))}
	nt, nkv := r.u64(), r.u64()
	for range nkv {
		k := r.str()
		f.meta[k] = r.value(r.u32())
	}
	for range nt {
		t := tensorInfo{name: r.str()}
		nd := r.u32()
		for range nd {
			t.dims = append(t.dims, r.u64())
		}
		t.typ, t.offset = r.u32(), r.u64()
		f.tensors = append(f.tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	pos := int64(len(b)) - int64(r.r.Len())
	f.data = (pos + Alignment - 1) / Alignment * Alignment
	return f, nil
}

func write(t *testing.T, c TinyLlama) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHeader(t *testing.T) {
	b := write(t, TinyLlama{Seed: 1})
	f, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.version != 3 {
		t.Errorf("version %d, want 3", f.version)
	}
	for k, want := range map[string]any{
		"general.architecture":          "llama",
		"llama.embedding_length":        uint32(64),
		"llama.block_count":             uint32(2),
		"llama.attention.head_count":    uint32(4),
		"llama.attention.head_count_kv": uint32(4),
		"llama.feed_forward_length":     uint32(128),
		"llama.context_length":          uint32(256),
		"llama.rope.dimension_count":    uint32(16),
		"tokenizer.ggml.model":          "llama",
		"tokenizer.ggml.bos_token_id":   uint32(1),
		"tokenizer.ggml.eos_token_id":   uint32(2),
	} {
		if got := f.meta[k]; got != want {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	toks, _ := f.meta["tokenizer.ggml.tokens"].([]any)
	types, _ := f.meta["tokenizer.ggml.token_type"].([]any)
	scores, _ := f.meta["tokenizer.ggml.scores"].([]any)
	if len(toks) != 272 || len(types) != len(toks) || len(scores) != len(toks) {
		t.Fatalf("%d tokens, %d types, %d scores; want 272 each", len(toks), len(types), len(scores))
	}
	if toks[3+0x0A] != "<0x0A>" || types[3+0x0A] != int32(tokenByte) {
		t.Errorf("token %d = %v (type %v), want the newline byte token", 3+0x0A, toks[3+0x0A], types[3+0x0A])
	}
	if toks[EOSID] != "</s>" || types[EOSID] != int32(tokenControl) {
		t.Errorf("eos token %v (type %v)", toks[EOSID], types[EOSID])
	}

	// 3 global tensors and 9 per block, F32, aligned, the last one ending
	// at the end of the file (after its padding).
	if len(f.tensors) != 3+2*9 {
		t.Fatalf("%d tensors, want %d", len(f.tensors), 3+2*9)
	}
	var end uint64
	for _, ti := range f.tensors {
		if ti.typ != typeF32 {
			t.Errorf("%s: type %d, want F32", ti.name, ti.typ)
		}
		if ti.offset%Alignment != 0 || ti.offset < end {
			t.Errorf("%s: offset %d (previous tensor ends at %d)", ti.name, ti.offset, end)
		}
		n := uint64(4)
		for _, d := range ti.dims {
			n *= d
		}
		end = ti.offset + n
	}
	if got := f.data + int64(end); got > f.size || f.size-got >= Alignment {
		t.Errorf("tensor data ends at %d, file is %d bytes", got, f.size)
	}
	emb := f.tensors[0]
	if emb.name != "token_embd.weight" || len(emb.dims) != 2 || emb.dims[0] != 64 || emb.dims[1] != 272 {
		t.Errorf("first tensor %s %v, want token_embd.weight [64 272]", emb.name, emb.dims)
	}
	// Norm weights are ones; the others are random.
	at := func(name string, i int) float32 {
		for _, ti := range f.tensors {
			if ti.name == name {
				o := f.data + int64(ti.offset) + 4*int64(i)
				return math.Float32frombits(binary.LittleEndian.Uint32(b[o:]))
			}
		}
		t.Fatalf("no tensor %s", name)
		return 0
	}
	if v := at("blk.1.ffn_norm.weight", 63); v != 1 {
		t.Errorf("blk.1.ffn_norm.weight[63] = %v, want 1", v)
	}
	if at("output.weight", 0) == at("output.weight", 1) {
		t.Errorf("output.weight starts with two equal values: not random")
	}
	if f.size < 400_000 || f.size > 550_000 {
		t.Errorf("file is %d bytes, want about 476 KB", f.size)
	}
}

func TestDeterministic(t *testing.T) {
	a, b, c := write(t, TinyLlama{Seed: 7}), write(t, TinyLlama{Seed: 7}), write(t, TinyLlama{Seed: 8})
	if !bytes.Equal(a, b) {
		t.Error("two writes with seed 7 differ")
	}
	if bytes.Equal(a, c) {
		t.Error("seeds 7 and 8 wrote the same bytes")
	}
	if len(a) != len(c) {
		t.Errorf("seed changed the size: %d and %d", len(a), len(c))
	}
}

func TestShape(t *testing.T) {
	f, err := parse(write(t, TinyLlama{Embd: 32, Blocks: 1, Heads: 2, FF: 48, Context: 64, Name: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.tensors) != 3+9 || f.meta["llama.rope.dimension_count"] != uint32(16) || f.meta["general.name"] != "x" {
		t.Errorf("%d tensors, rope dims %v, name %v", len(f.tensors), f.meta["llama.rope.dimension_count"], f.meta["general.name"])
	}
	if err := Write(io.Discard, TinyLlama{Embd: 30, Heads: 4}); err == nil {
		t.Error("30 dimensions over 4 heads: no error")
	}
}

func TestWriteError(t *testing.T) {
	if err := Write(failing{}, TinyLlama{}); err == nil {
		t.Error("a failing writer: no error")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }
