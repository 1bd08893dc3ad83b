// Package wire is the collector's ingest protocol, shared by the proxy-wasm
// filter (filters/wasm, the client) and internal/ingest (the server). It
// imports no net/http, so it builds for GOOS=wasip1.
//
// A batch is JSON lines (ContentType), POSTed to RecordsPath: each line is
// a capture.Record in its own JSON, plus two ingest-only members (Line).
// The collector answers with a Result. The filter fetches the capture's
// hash key from KeyPath (a Key) before it hashes anything.
package wire

import (
	"encoding/hex"
	"fmt"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Paths and media type of the ingest API.
const (
	RecordsPath = "/v1/ingest/records"
	KeyPath     = "/v1/ingest/key"
	ContentType = "application/x-ndjson"
)

// Line is one line of a batch: the record's own members, then hash_chain and
// key_id, which the collector consumes and never stores.
type Line struct {
	*capture.Record
	// HashChain holds the prompt's chain values (capture.Hasher.Chain), 16
	// hex digits each. The collector remaps them to the record's hash_ids
	// with its own Hasher, so ids agree across every filter VM and pod.
	HashChain []Chain `json:"hash_chain,omitempty"`
	// KeyID names the hash key HashChain and Session were computed with
	// (capture.Hasher.KeyID); the collector keeps them only when it is its
	// own key. Empty when the record carries neither.
	KeyID string `json:"key_id,omitempty"`
}

// Chain is one chain value; its JSON form is a string of 16 hex digits,
// which JSON tools that read numbers as float64 cannot round.
type Chain uint64

// MarshalText implements encoding.TextMarshaler.
func (c Chain) MarshalText() ([]byte, error) {
	var b [8]byte
	for i := range b {
		b[i] = byte(c >> (56 - 8*i))
	}
	return hex.AppendEncode(nil, b[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: exactly 16 hex digits.
func (c *Chain) UnmarshalText(p []byte) error {
	if len(p) != 16 {
		return fmt.Errorf("hash chain value %q: want 16 hex digits", p)
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], p); err != nil {
		return fmt.Errorf("hash chain value %q: want 16 hex digits", p)
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	*c = Chain(v)
	return nil
}

// Chains converts chain values to their wire form (nil for none).
func Chains(vals []uint64) []Chain {
	if len(vals) == 0 {
		return nil
	}
	out := make([]Chain, len(vals))
	for i, v := range vals {
		out[i] = Chain(v)
	}
	return out
}

// Values converts wire chain values back (nil for none).
func Values(cs []Chain) []uint64 {
	if len(cs) == 0 {
		return nil
	}
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = uint64(c)
	}
	return out
}

// Key is the answer to GET KeyPath: the capture's HMAC key and block size,
// so that a filter's chain values and session hashes are the collector's.
type Key struct {
	Key   []byte `json:"key"`    // base64 in JSON
	KeyID string `json:"key_id"` // capture.Hasher.KeyID of Key
	Block int    `json:"block"`  // characters per hash block
}

// Result is the answer to a batch: what became of its lines.
type Result struct {
	Received int `json:"received"` // lines read
	Written  int `json:"written"`  // records handed to the capture writer
	Rejected int `json:"rejected"` // lines refused (Errors says why)
	// Dropped counts valid records the capture writer's full queue refused.
	Dropped int `json:"dropped"`
	// KeyID is the collector's hash key id: a filter holding another key
	// (the collector restarted with a fresh one) fetches the key again.
	KeyID  string      `json:"key_id,omitempty"`
	Errors []LineError `json:"errors,omitempty"` // the first few refusals
}

// LineError says why line Line (1-based) of a batch was refused.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}
