// Package gguf writes a tiny llama model with random weights in the GGUF
// format, so that runner/process can test against a real inference engine
// (llama.cpp, through node-llama-cpp) without downloading weights: no
// package source this project's builds can reach ships a small GGUF.
//
// The model answers gibberish, deterministically for a seed at
// temperature 0; it exists to exercise loading, tokenizing, generating
// and streaming, not to say anything.
//
// The format is GGUF version 3 as the ggml repository's docs/gguf.md
// specifies it: a header (magic "GGUF", version, tensor count, metadata
// count), the metadata key/value pairs, the tensor infos, padding to the
// alignment, then the tensor data, each tensor aligned. All integers are
// little-endian; strings are a uint64 length and bytes.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
)

// Alignment is the alignment of the tensor data (general.alignment's
// default, which Write does not override).
const Alignment = 32

// Version is the GGUF version Write writes.
const Version = 3

// Value types of metadata (docs/gguf.md, gguf_metadata_value_type).
const (
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeString  = 8
	typeArray   = 9
)

// Token types of tokenizer.ggml.token_type (llama.cpp's
// llama_token_type).
const (
	tokenNormal  = 1
	tokenUnknown = 2
	tokenControl = 3
	tokenByte    = 6
)

// typeF32 is ggml_type GGML_TYPE_F32.
const typeF32 = 0

// Special token ids of the vocabulary.
const (
	UnknownID = 0
	BOSID     = 1
	EOSID     = 2
)

// pieces are the word pieces after the byte tokens, in the SentencePiece
// style: U+2581 marks a word start. A higher score merges first.
var pieces = []string{"▁", "▁the", "▁a", "▁is", "▁model", "▁release", "▁gate", "e", "t", "a", "o", "n", "s"}

// TinyLlama is the shape of the model. The zero value is the model the
// runner reference verified with node-llama-cpp: n_embd 64, 2 blocks, 4
// heads, feed-forward 128, context 256, 272 tokens (about 476 KB).
type TinyLlama struct {
	// Seed draws the weights; the same seed writes the same bytes.
	Seed    uint64
	Name    string // general.name; empty means "airlock-tiny-llama"
	Embd    int    // llama.embedding_length; zero means 64
	Blocks  int    // llama.block_count; zero means 2
	Heads   int    // llama.attention.head_count (and _kv); zero means 4
	FF      int    // llama.feed_forward_length; zero means 128
	Context int    // llama.context_length; zero means 256
}

func (c TinyLlama) defaults() TinyLlama {
	if c.Name == "" {
		c.Name = "airlock-tiny-llama"
	}
	c.Embd = cmpOr(c.Embd, 64)
	c.Blocks = cmpOr(c.Blocks, 2)
	c.Heads = cmpOr(c.Heads, 4)
	c.FF = cmpOr(c.FF, 128)
	c.Context = cmpOr(c.Context, 256)
	return c
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Vocab is the model's vocabulary: <unk>, <s>, </s>, the 256 byte tokens
// <0x00>…<0xFF>, then a few word pieces.
func Vocab() []string {
	v := []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		v = append(v, fmt.Sprintf("<0x%02X>", b))
	}
	return append(v, pieces...)
}

type kv struct {
	key string
	val any // uint32, float32, string, []string, []float32, []int32
}

type tensor struct {
	name string
	dims []uint64 // ggml order: dims[0] is the row length
	norm bool     // a norm weight: all ones
}

func (t tensor) elems() uint64 {
	n := uint64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

// Write writes the model to w.
func Write(w io.Writer, cfg TinyLlama) error {
	c := cfg.defaults()
	if c.Embd <= 0 || c.Blocks <= 0 || c.Heads <= 0 || c.FF <= 0 || c.Context <= 0 {
		return fmt.Errorf("gguf: negative size in %+v", cfg)
	}
	if c.Embd%c.Heads != 0 {
		return fmt.Errorf("gguf: embedding length %d is not a multiple of %d heads", c.Embd, c.Heads)
	}
	vocab := Vocab()
	scores := make([]float32, len(vocab))
	types := make([]int32, len(vocab))
	for i := range vocab {
		switch {
		case i == UnknownID:
			types[i] = tokenUnknown
		case i < 3:
			types[i] = tokenControl
		case i < 3+256:
			types[i] = tokenByte
		default:
			types[i] = tokenNormal
			scores[i] = -float32(i - (3 + 256))
		}
	}
	meta := []kv{
		{"general.architecture", "llama"},
		{"general.name", c.Name},
		{"general.file_type", uint32(0)}, // all F32
		{"llama.context_length", uint32(c.Context)},
		{"llama.embedding_length", uint32(c.Embd)},
		{"llama.block_count", uint32(c.Blocks)},
		{"llama.feed_forward_length", uint32(c.FF)},
		{"llama.attention.head_count", uint32(c.Heads)},
		{"llama.attention.head_count_kv", uint32(c.Heads)},
		{"llama.rope.dimension_count", uint32(c.Embd / c.Heads)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.vocab_size", uint32(len(vocab))},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", vocab},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(UnknownID)},
		{"tokenizer.ggml.bos_token_id", uint32(BOSID)},
		{"tokenizer.ggml.eos_token_id", uint32(EOSID)},
	}
	e, f, n := uint64(c.Embd), uint64(c.FF), uint64(len(vocab))
	tensors := []tensor{
		{name: "token_embd.weight", dims: []uint64{e, n}},
		{name: "output_norm.weight", dims: []uint64{e}, norm: true},
		{name: "output.weight", dims: []uint64{e, n}},
	}
	for b := range c.Blocks {
		p := fmt.Sprintf("blk.%d.", b)
		tensors = append(tensors,
			tensor{name: p + "attn_norm.weight", dims: []uint64{e}, norm: true},
			tensor{name: p + "attn_q.weight", dims: []uint64{e, e}},
			tensor{name: p + "attn_k.weight", dims: []uint64{e, e}},
			tensor{name: p + "attn_v.weight", dims: []uint64{e, e}},
			tensor{name: p + "attn_output.weight", dims: []uint64{e, e}},
			tensor{name: p + "ffn_norm.weight", dims: []uint64{e}, norm: true},
			tensor{name: p + "ffn_gate.weight", dims: []uint64{e, f}},
			tensor{name: p + "ffn_up.weight", dims: []uint64{e, f}},
			tensor{name: p + "ffn_down.weight", dims: []uint64{f, e}},
		)
	}

	bw := &writer{w: bufio.NewWriter(w)}
	bw.bytes([]byte("GGUF"))
	bw.u32(Version)
	bw.u64(uint64(len(tensors)))
	bw.u64(uint64(len(meta)))
	for _, m := range meta {
		bw.str(m.key)
		bw.value(m.val)
	}
	var off uint64
	for _, t := range tensors {
		bw.str(t.name)
		bw.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			bw.u64(d)
		}
		bw.u32(typeF32)
		bw.u64(off)
		off = align(off + 4*t.elems())
	}
	bw.pad()
	rng := rand.New(rand.NewPCG(c.Seed, 0))
	for _, t := range tensors {
		for range t.elems() {
			v := float32(1)
			if !t.norm {
				v = float32(rng.NormFloat64() * 0.1)
			}
			bw.u32(math.Float32bits(v))
		}
		bw.pad()
	}
	if bw.err != nil {
		return fmt.Errorf("gguf: %w", bw.err)
	}
	if err := bw.w.Flush(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

func align(n uint64) uint64 { return (n + Alignment - 1) / Alignment * Alignment }

// writer writes little-endian values and remembers the first error.
type writer struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (w *writer) bytes(b []byte) {
	if w.err != nil {
		return
	}
	k, err := w.w.Write(b)
	w.n += uint64(k)
	w.err = err
}

func (w *writer) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.buf[:4], v)
	w.bytes(w.buf[:4])
}

func (w *writer) u64(v uint64) {
	binary.LittleEndian.PutUint64(w.buf[:8], v)
	w.bytes(w.buf[:8])
}

func (w *writer) str(s string) {
	w.u64(uint64(len(s)))
	w.bytes([]byte(s))
}

// pad writes zeros up to the alignment.
func (w *writer) pad() {
	for w.n%Alignment != 0 {
		w.bytes([]byte{0})
	}
}

func (w *writer) value(v any) {
	switch v := v.(type) {
	case uint32:
		w.u32(typeUint32)
		w.u32(v)
	case float32:
		w.u32(typeFloat32)
		w.u32(math.Float32bits(v))
	case string:
		w.u32(typeString)
		w.str(v)
	case []string:
		w.u32(typeArray)
		w.u32(typeString)
		w.u64(uint64(len(v)))
		for _, s := range v {
			w.str(s)
		}
	case []float32:
		w.u32(typeArray)
		w.u32(typeFloat32)
		w.u64(uint64(len(v)))
		for _, f := range v {
			w.u32(math.Float32bits(f))
		}
	case []int32:
		w.u32(typeArray)
		w.u32(typeInt32)
		w.u64(uint64(len(v)))
		for _, i := range v {
			w.u32(uint32(i))
		}
	default:
		w.err = errors.Join(w.err, fmt.Errorf("no GGUF type for %T", v))
	}
}
