package workload

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Synthetic yields requests with lengths drawn as GuideLLM's synthetic
// data does, in its vocabulary (see ParseSynthetic). Offsets are all zero:
// a rate profile schedules them.
//
// Prefix sharing and conversations are expressed with prefix-block ids,
// which internal/synth turns into byte-identical text: a conversation's
// prompt starts with its bucket's shared prefix (one block of
// prefix_tokens), and turn k's prompt is turn k-1's prompt, its output and
// the new user text, so every earlier turn is a byte prefix of the next —
// the history a chat client resends. PromptTokens counts all of it.
type Synthetic struct {
	Spec SyntheticSpec
	// one random stream per quantity, as GuideLLM seeds one sampler each,
	// so adding a prefix or a delay does not change the lengths drawn
	prompt, output, prefix, delay *rand.Rand
	n                             int // requests returned
	conv                          int // conversations started
	turns                         []synthTurn
	nextID                        uint64 // next free conversation block id (ids are uint32: at most maxBlockIDs)
	cur                           convState
}

var _ Source = (*Synthetic)(nil)

// SyntheticSpec is a parsed `synthetic:` spec.
type SyntheticSpec struct {
	// Prompt is the new user text per turn, in tokens.
	Prompt Lengths
	// Output is the output length per turn; a zero Mean leaves it to the
	// server (GuideLLM: output_tokens omitted).
	Output Lengths
	// Samples is the number of conversations (default 1000); each is
	// Turns requests.
	Samples int
	// Seed seeds every draw (default 42).
	Seed int64
	// Turns is requests per conversation (default 1).
	Turns int
	// Delay is the think time before each turn after the first, drawn once
	// per conversation as GuideLLM does; zero Mean: none.
	Delay Delays
	// PrefixBuckets share prompt prefixes between conversations; none:
	// every prompt is unique.
	PrefixBuckets []PrefixBucket
}

// Lengths is a distribution of token counts, drawn as GuideLLM's
// IntegerRangeSampler draws: Min defaults to max(1, Mean−5·Stdev) and Max
// to Mean+5·Stdev (both to Mean without Stdev); with Stdev a normal draw
// clipped to [Min, Max], without one a uniform draw from [Min, Max].
type Lengths struct {
	Mean, Stdev float64
	Min, Max    int // 0: the default above
}

// Delays is a distribution of think times in seconds, drawn as GuideLLM's
// FloatRangeSampler draws (as Lengths, with a floor of 0).
type Delays struct {
	Mean, Stdev, Min, Max float64
}

// PrefixBucket is one of GuideLLM's prefix buckets: Count distinct
// prefixes of Tokens tokens, chosen by a share of conversations
// proportional to Weight.
type PrefixBucket struct {
	Weight int // bucket_weight (default 100)
	Count  int // prefix_count (default 1)
	Tokens int // prefix_tokens
}

// bounds returns the range draws fall in.
func (l Lengths) bounds() (lo, hi int) {
	mean := int(math.Round(l.Mean))
	spread := int(math.Round(5 * l.Stdev))
	lo, hi = l.Min, l.Max
	if lo == 0 {
		lo = max(1, mean-spread)
	}
	if hi == 0 {
		hi = mean + spread
	} else if l.Min == 0 {
		lo = min(lo, hi) // an explicit max below the mean wins
	}
	return lo, max(hi, lo)
}

func (l Lengths) draw(rng *rand.Rand) int {
	lo, hi := l.bounds()
	switch {
	case lo == hi:
		return lo
	case l.Stdev == 0:
		return lo + rng.IntN(hi-lo+1)
	}
	v := math.Round(l.Mean + rng.NormFloat64()*l.Stdev)
	return int(min(max(v, float64(lo)), float64(hi)))
}

func (d Delays) draw(rng *rand.Rand) time.Duration {
	lo, hi := d.Min, d.Max
	if lo == 0 {
		lo = max(0, d.Mean-5*d.Stdev)
	}
	if hi == 0 {
		hi = d.Mean + 5*d.Stdev
	} else if d.Min == 0 {
		lo = min(lo, hi)
	}
	hi = max(hi, lo)
	var v float64
	switch {
	case lo == hi:
		v = lo
	case d.Stdev == 0:
		v = lo + rng.Float64()*(hi-lo)
	default:
		v = min(max(d.Mean+rng.NormFloat64()*d.Stdev, lo), hi)
	}
	return time.Duration(v * float64(time.Second))
}

// synthTurn is one drawn turn of the current conversation.
type synthTurn struct {
	prompt, output int // total prompt tokens (history included), output tokens
}

// convState is the conversation being emitted.
type convState struct {
	session  string
	turn     int
	delay    time.Duration
	prefixID uint32
	prefix   int // prefix tokens (0: none)
	block    int // block size in tokens (0: no ids)
	ids      []uint32
}

func newSynthetic(s SyntheticSpec) *Synthetic {
	seed := uint64(s.Seed)
	return &Synthetic{
		Spec:   s,
		prompt: rand.New(rand.NewPCG(seed, 0x5eed)),
		output: rand.New(rand.NewPCG(seed+1, 0x5eed)),
		delay:  rand.New(rand.NewPCG(seed+2, 0x5eed)),
		prefix: rand.New(rand.NewPCG(seed+3, 0x5eed)),
		nextID: uint64(s.prefixCount()),
	}
}

// prefixCount is the number of distinct prefixes over all buckets.
func (s *SyntheticSpec) prefixCount() int {
	n := 0
	for _, b := range s.PrefixBuckets {
		n += b.Count
	}
	return n
}

// Next returns the next request.
func (s *Synthetic) Next() (Request, error) {
	if s.cur.turn >= len(s.turns) {
		if s.conv >= s.Spec.Samples {
			return Request{}, io.EOF
		}
		if err := s.startConversation(); err != nil {
			return Request{}, err
		}
	}
	k := s.cur.turn
	t := s.turns[k]
	r := Request{Index: s.n, Endpoint: openai.Chat, Stream: true, PromptTokens: t.prompt, OutputTokens: t.output}
	if s.Spec.Turns > 1 {
		r.Session, r.Turn = s.cur.session, k
		if k > 0 {
			r.Delay = s.cur.delay
		}
	}
	if s.cur.block > 0 {
		r.BlockTokens = s.cur.block
		n := (t.prompt + s.cur.block - 1) / s.cur.block
		// ids are shared by all turns of the conversation: each turn's
		// list extends the previous one's
		r.HashIDs = s.cur.ids[:n:n]
	}
	s.cur.turn++
	s.n++
	return r, nil
}

// maxBlockIDs is the number of distinct prefix-block ids (Request.HashIDs
// are uint32).
const maxBlockIDs = 1 << 32

// startConversation draws the next conversation's turns, prefix and ids.
// It fails when the ids would pass maxBlockIDs: wrapping around would make
// unrelated conversations share prefixes.
func (s *Synthetic) startConversation() error {
	sp := &s.Spec
	s.cur = convState{}
	if sp.Turns > 1 {
		s.cur.session = "synthetic-" + strconv.Itoa(s.conv)
	}
	if sp.Delay.Mean > 0 {
		s.cur.delay = sp.Delay.draw(s.delay)
	}
	if len(sp.PrefixBuckets) > 0 {
		b, id := s.pickPrefix()
		if b.Tokens > 0 {
			s.cur.prefix, s.cur.prefixID, s.cur.block = b.Tokens, id, b.Tokens
		}
	}
	s.turns = s.turns[:0]
	history := s.cur.prefix
	for range max(sp.Turns, 1) {
		u := sp.Prompt.draw(s.prompt)
		o := 0
		if sp.Output.Mean > 0 {
			o = sp.Output.draw(s.output)
		}
		s.turns = append(s.turns, synthTurn{prompt: min(history+u, maxSyntheticPrompt), output: o})
		history += u + o
	}
	if s.cur.block == 0 && sp.Turns > 1 {
		s.cur.block = defaultBlockTokens
	}
	if s.cur.block > 0 {
		last := s.turns[len(s.turns)-1].prompt
		n := (last + s.cur.block - 1) / s.cur.block
		s.cur.ids = make([]uint32, n)
		start := 0
		if s.cur.prefix > 0 {
			s.cur.ids[0] = s.cur.prefixID
			start = 1
		}
		if s.nextID+uint64(n-start) > maxBlockIDs {
			return fmt.Errorf("synthetic: conversation %d needs prefix-block ids beyond 2^32 (%d blocks of %d tokens so far): "+
				"the workload is too large to keep every prompt distinct; lower samples, turns or prompt_tokens", s.conv, s.nextID, s.cur.block)
		}
		for i := start; i < n; i++ {
			s.cur.ids[i] = uint32(s.nextID)
			s.nextID++
		}
	}
	s.conv++
	return nil
}

// maxSyntheticPrompt bounds a drawn prompt with its history (internal/synth
// refuses longer ones; a million tokens is beyond any model's context).
const maxSyntheticPrompt = 1 << 20

// pickPrefix chooses a bucket with probability proportional to its weight,
// then one of its prefixes uniformly; the id is the prefix's index over all
// buckets.
func (s *Synthetic) pickPrefix() (PrefixBucket, uint32) {
	total := 0
	for _, b := range s.Spec.PrefixBuckets {
		total += b.Weight
	}
	x, base := s.prefix.IntN(total), 0
	for _, b := range s.Spec.PrefixBuckets {
		if x < b.Weight {
			return b, uint32(base + s.prefix.IntN(b.Count))
		}
		x -= b.Weight
		base += b.Count
	}
	b := s.Spec.PrefixBuckets[len(s.Spec.PrefixBuckets)-1]
	return b, uint32(base - b.Count)
}
