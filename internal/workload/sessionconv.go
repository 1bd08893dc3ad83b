package workload

import (
	"encoding/binary"
	"hash/fnv"
)

// Issue 16: a multi-turn trace's rows count either the turn's new text
// (AIPerf's session rows: "delta") or the whole context, earlier turns and
// replies included (Mooncake's own traces: "whole-context"). Sent with the
// history on top, a whole-context row sends the conversation twice (2.44×
// the trace's prompt tokens in a 400-request trace). The rule, decided per
// session from its previous row and this one, while reading (the trace is
// never held in memory):
//
//   - When both rows have hash_ids and the previous one covers at least one
//     whole block, the row is whole-context when the previous row's ids
//     over its whole blocks (the first floor(input_length/block) ids) are a
//     prefix of this row's, the previous row's last, partial block does not
//     stand unchanged at the same place (a whole-context row fills it, and
//     Mooncake hashes each block's tokens, so its id changes; the same id
//     means the same text repeated, as delta rows that share a system
//     prompt do), and the length rule below does not say delta; else delta.
//   - Otherwise the lengths decide: the row is whole-context when its
//     input_length covers the previous prompt and its reply, within 2%
//     (input_length >= (prev_in + prev_out) × 49/50: a reply the next prompt
//     carries may lose a few tokens, its end-of-sequence token, a stripped
//     space); delta when it is shorter. When the previous row has no
//     output_length and this one is not shorter than its prompt (within
//     the same 2%), it cannot be told yet.
//   - Rows without input_length (text_input, messages) cannot be told.
//
// The first decision holds for the rest of the session: a delta turn that
// happens to be long does not turn its session whole-context halfway, and a
// whole-context conversation whose context was later cut stays
// whole-context. A session's first row, and its rows before a decision, are
// sent as delta rows (with history; a first turn has none, so it is sent
// alike under both conventions).

// convSlackDiv sets the length rule's tolerance: 1/50 (2%) of the previous
// prompt plus its reply.
const convSlackDiv = 50

// traceSession is what a reader keeps of one session of a trace: its turn
// count and convention, and while the convention is undecided, what the
// rule needs of its last row (a few words, never the row's ids).
type traceSession struct {
	turn int
	conv SessionConvention
	// Of the last row, while conv is undecided:
	hasIn   bool   // it had input_length
	in, out int64  // its input_length and output_length, tokens; out -1 when absent
	full    int    // its hash ids that cover whole blocks
	idsHash uint64 // FNV-1a of those ids
	// partial is the id of its last, partial block (hasPartial): seen
	// again at the same place, the same text was repeated, not extended.
	partial    uint32
	hasPartial bool
}

// next returns the convention of a session's next row (input_length in
// when hasIn, output_length out when hasOut, hash ids of block tokens each)
// and remembers what deciding the row after it needs.
func (s *traceSession) next(in int64, hasIn bool, out int64, hasOut bool, ids []uint32, block int) SessionConvention {
	s.turn++
	if s.conv != ConventionUndecided {
		return s.conv
	}
	if s.turn > 1 {
		s.conv = s.decide(in, hasIn, ids)
		if s.conv != ConventionUndecided {
			return s.conv
		}
	}
	s.hasIn, s.in, s.out, s.full = hasIn, in, -1, 0
	if hasOut {
		s.out = out
	}
	s.hasPartial = false
	if hasIn && block > 0 {
		s.full = int(min(int64(len(ids)), in/int64(block)))
		s.idsHash = hashIDs(ids[:s.full])
		if len(ids) > s.full {
			s.partial, s.hasPartial = ids[s.full], true
		}
	}
	return ConventionUndecided
}

// decide applies the rule (see above) to a row, given the previous one.
func (s *traceSession) decide(in int64, hasIn bool, ids []uint32) SessionConvention {
	if !s.hasIn || !hasIn {
		return ConventionUndecided
	}
	need := s.in + max(s.out, 0)
	if s.full > 0 && len(ids) > 0 {
		switch {
		case len(ids) < s.full || hashIDs(ids[:s.full]) != s.idsHash:
			return ConventionDelta // not an extension of the previous context
		case s.hasPartial && len(ids) > s.full && ids[s.full] == s.partial:
			// The previous row's partial block again, unchanged: a
			// whole-context row would have filled (and so re-hashed) it.
			return ConventionDelta
		case in < need-need/convSlackDiv:
			// The ids extend (a shared system prompt does that too), but
			// the row is too short to hold the previous prompt and reply.
			return ConventionDelta
		}
		return ConventionWhole
	}
	switch {
	case in < need-need/convSlackDiv:
		return ConventionDelta
	case s.out < 0:
		return ConventionUndecided // the reply's length is unknown
	}
	return ConventionWhole
}

// hashIDs is the 64-bit FNV-1a hash of ids, 4 little-endian bytes each.
func hashIDs(ids []uint32) uint64 {
	h := fnv.New64a()
	var b [4]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint32(b[:], id)
		_, _ = h.Write(b[:])
	}
	return h.Sum64()
}
