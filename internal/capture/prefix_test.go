package capture

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sameStructure reports whether two id lists of lists give equal ids at
// exactly the same (prompt, position) pairs: the only thing ids mean.
func sameStructure(a, b [][]uint32) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d prompts vs %d", len(a), len(b))
	}
	type pos struct{ p, i int }
	var all []pos
	for p := range a {
		if len(a[p]) != len(b[p]) {
			return fmt.Errorf("prompt %d: %d ids %v vs %d ids %v", p, len(a[p]), a[p], len(b[p]), b[p])
		}
		for i := range a[p] {
			all = append(all, pos{p, i})
		}
	}
	for _, x := range all {
		for _, y := range all {
			if (a[x.p][x.i] == a[y.p][y.i]) != (b[x.p][x.i] == b[y.p][y.i]) {
				return fmt.Errorf("prompt %d block %d vs prompt %d block %d: equal in one, not the other (%v, %v)", x.p, x.i, y.p, y.i, a, b)
			}
		}
	}
	return nil
}

// coarsenAgainstDirect hashes prompts at fine and at coarse blocks with the
// same key and checks the coarsened fine ids against the coarse ones.
func coarsenAgainstDirect(t *testing.T, prompts []string, fine, coarse int) {
	t.Helper()
	hf, hc := NewHasher([]byte("k"), fine), NewHasher([]byte("k"), coarse)
	c := NewCoarsener(coarse)
	var got, want [][]uint32
	for _, p := range prompts {
		ids, err := c.IDs(hf.HashIDs(p), fine)
		if err != nil {
			t.Fatal(err)
		}
		got, want = append(got, ids), append(want, hc.HashIDs(p))
	}
	if err := sameStructure(got, want); err != nil {
		t.Fatalf("blocks of %d coarsened to %d: %v", fine, coarse, err)
	}
}

// Coarse ids derived from fine ones mean what ids hashed at the coarse size
// mean: the same prompts share the same coarse blocks, partial last blocks
// included.
func TestCoarsenerMatchesDirectHashing(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	text := func(n int) string {
		b := make([]rune, n)
		for i := range b {
			b[i] = []rune("abé ")[rng.IntN(4)] // a two-byte rune: blocks count runes
		}
		return string(b)
	}
	system := text(700)
	long := text(5000)
	prompts := []string{
		system + "first question",
		system + "second question",
		long,
		long[:2048],        // exactly one coarse block of the long prompt
		long[:2047],        // one character short: a partial block of its own
		long[:2048] + "x",  // shares the first coarse block
		long + "and more",  // shares every whole coarse block of long
		system[:256],       // exactly one fine block
		system + "first q", // a different partial last block
	}
	for range 40 {
		base := prompts[rng.IntN(len(prompts))]
		cut := rng.IntN(len([]rune(base)) + 1)
		prompts = append(prompts, string([]rune(base)[:cut])+text(rng.IntN(3000)))
	}
	for _, fine := range []int{16, 256, 1024, 2048} {
		coarsenAgainstDirect(t, prompts, fine, CoarseBlockChars)
	}
	coarsenAgainstDirect(t, prompts, 64, 512)
}

func FuzzCoarsener(f *testing.F) {
	f.Add("shared system prompt, then a question", "shared system prompt, then another", "", uint8(2), uint8(2))
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaab", uint8(0), uint8(1))
	f.Add("héllo wörld héllo wörld", "héllo wörld", "héllo", uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, a, b, c string, fineExp, factorExp uint8) {
		fine := 1 << (fineExp % 5)        // 1..16 characters
		coarse := fine << (factorExp % 4) // 1 to 8 fine blocks each
		coarsenAgainstDirect(t, []string{a, b, c, a + b, b + c}, fine, coarse)
	})
}

func TestCoarsenerRefusesBlocksThatDoNotDivide(t *testing.T) {
	c := NewCoarsener(0)
	if c.Chars() != CoarseBlockChars {
		t.Fatalf("default coarse block %d, want %d", c.Chars(), CoarseBlockChars)
	}
	for _, block := range []int{0, -1, 300, 4096} {
		if _, err := c.IDs([]uint32{0, 1}, block); err == nil || !strings.Contains(err.Error(), fmt.Sprint(block)) {
			t.Errorf("block %d: error %v, want one naming the block", block, err)
		}
	}
	if ids, err := c.IDs(nil, 256); ids != nil || err != nil {
		t.Errorf("no ids: %v, %v", ids, err)
	}
}

func TestCheckBlockChars(t *testing.T) {
	for _, n := range []int{16, 32, 64, 128, 256, 512, 1024, 2048} {
		if err := CheckBlockChars(n); err != nil {
			t.Errorf("%d: %v", n, err)
		}
	}
	for _, n := range []int{0, -256, 8, 15, 100, 300, 3000, 4096} {
		if err := CheckBlockChars(n); err == nil || !strings.Contains(err.Error(), fmt.Sprint(n)) {
			t.Errorf("%d: error %v, want one naming it", n, err)
		}
	}
	if err := CheckBlockChars(DefaultBlockChars); err != nil {
		t.Errorf("the default block: %v", err)
	}
}

// trackRecord runs a chat request through a Tracker, as a front end does.
func trackRecord(t *testing.T, opts *Options, id string, messages ...[2]string) *Record {
	t.Helper()
	var sb strings.Builder
	for i, m := range messages {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"role":%q,"content":%q}`, m[0], m[1])
	}
	now := time.Now()
	tr := NewTracker(now, now, id, "POST", "/v1/chat/completions", opts)
	tr.RequestBody([]byte(`{"model":"m","messages":[`+sb.String()+`]}`), true)
	tr.ResponseStart(now, 200, "application/json", "")
	tr.ResponseData(now, []byte(`{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":200,"completion_tokens":1}}`))
	return tr.Finish(now, nil, false)
}

// Issue 18: a 700-character system prompt shared by every request is
// invisible at Mooncake's 2048-character blocks and shows at the default
// fine blocks: each later request reuses the two whole blocks of 256
// characters its system message fills (the third holds the message's end
// and the start of the user's).
func TestReuseCounterSeesShortSharedSystemPrompt(t *testing.T) {
	opts := &Options{Hasher: NewHasher([]byte("k"), 0)}
	system := strings.Repeat("You are a careful assistant; answer briefly. ", 16)[:700]
	const n = 5
	rc := NewReuseCounter(0)
	var chars int64
	for i := range n {
		user := fmt.Sprintf("question %d: %s", i, strings.Repeat("why? ", 40+i))
		rec := trackRecord(t, opts, fmt.Sprint(i), [2]string{"system", system}, [2]string{"user", user})
		if rec.Block != DefaultBlockChars || len(rec.HashIDs) == 0 {
			t.Fatalf("record %d: block %d, ids %v", i, rec.Block, rec.HashIDs)
		}
		if err := rc.Add(rec); err != nil {
			t.Fatal(err)
		}
		// The hashed text: "role\x1fcontent\x1e" per message.
		chars += int64(len("system\x1f\x1euser\x1f\x1e") + len(system) + len(user))
	}
	if err := rc.Add(&Record{ID: "shadow", Shadow: true, HashIDs: []uint32{0}, Block: DefaultBlockChars}); err != nil {
		t.Fatal(err)
	}
	shared := int64(len("system\x1f")+len(system)) / DefaultBlockChars * DefaultBlockChars // whole blocks
	fine, coarse := rc.Fine(), rc.Coarse()
	if fine.BlockChars != DefaultBlockChars || coarse.BlockChars != CoarseBlockChars {
		t.Fatalf("block sizes %d and %d", fine.BlockChars, coarse.BlockChars)
	}
	if fine.Requests != n || coarse.Requests != n {
		t.Fatalf("%d and %d requests counted, want %d (the shadow record is not)", fine.Requests, coarse.Requests, n)
	}
	if fine.Chars != chars || coarse.Chars != chars {
		t.Errorf("characters %d and %d, want %d", fine.Chars, coarse.Chars, chars)
	}
	if want := (n - 1) * shared; fine.ReusedChars != want || fine.ReusedBlocks != (n-1)*shared/DefaultBlockChars {
		t.Errorf("fine: %d characters in %d blocks reused, want %d in %d", fine.ReusedChars, fine.ReusedBlocks, want, want/DefaultBlockChars)
	}
	if coarse.ReusedChars != 0 || coarse.ReusedBlocks != 0 {
		t.Errorf("coarse: %d characters reused, want none (no request repeats a whole 2048-character block)", coarse.ReusedChars)
	}
	if fine.CharShare() <= 0 || fine.CharShare() != float64(fine.ReusedChars)/float64(chars) {
		t.Errorf("fine character share %v", fine.CharShare())
	}
	// Tokens pro rata: every record reports 200 prompt tokens.
	if fine.Tokens != n*200 || fine.ReusedTokens == 0 || fine.TokenShare() < fine.CharShare()*0.9 || fine.TokenShare() > fine.CharShare()*1.1 {
		t.Errorf("fine tokens %d, reused %d (share %v vs characters' %v)", fine.Tokens, fine.ReusedTokens, fine.TokenShare(), fine.CharShare())
	}
	if err := rc.Add(&Record{ID: "odd", HashIDs: []uint32{1}, Block: 300}); err == nil || !strings.Contains(err.Error(), "odd") {
		t.Errorf("a 300-character block: error %v, want one naming the record", err)
	}
	if rc.Fine().Requests != n {
		t.Errorf("a refused record was counted")
	}
}

// A long shared prefix shows at both sizes; a capture of old 2048-character
// blocks reads the same at both.
func TestReuseCounterCoarseBlocks(t *testing.T) {
	opts := &Options{Hasher: NewHasher([]byte("k"), 0)}
	doc := strings.Repeat("0123456789abcdef", 300) // 4800 characters
	rc := NewReuseCounter(0)
	for i := range 3 {
		if err := rc.Add(trackRecord(t, opts, fmt.Sprint(i), [2]string{"user", doc + fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	// "user\x1f" + 4800 + 1 + "\x1e": 4807 characters; 2 whole coarse
	// blocks (4096) and 18 whole fine ones (4608) shared by the two later
	// requests.
	if f, c := rc.Fine(), rc.Coarse(); f.ReusedChars != 2*4608 || c.ReusedChars != 2*4096 || c.ReusedBlocks != 4 {
		t.Errorf("reused characters: fine %d, coarse %d (%d blocks); want %d, %d (4)", f.ReusedChars, c.ReusedChars, c.ReusedBlocks, 2*4608, 2*4096)
	}
	old := NewReuseCounter(0)
	for i, ids := range [][]uint32{{0, 1, 2}, {0, 1, 3}, {4}} {
		if err := old.Add(&Record{ID: fmt.Sprint(i), HashIDs: ids, Block: 2048, PromptChars: 2048*len(ids) - 10}); err != nil {
			t.Fatal(err)
		}
	}
	if f, c := old.Fine(), old.Coarse(); f != c || f.ReusedBlocks != 2 || f.ReusedChars != 2*2048 {
		t.Errorf("a 2048-character capture: fine %+v, coarse %+v; want equal, 2 blocks reused", f, c)
	}
}
