package workload

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func writeLines(t testing.TB, path string, n int, line func(i int) string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// mooncakeLine is a row shaped like the public trace's: 24 hash ids.
func mooncakeLine(i int) string {
	var sb strings.Builder
	sb.WriteString(`{"timestamp":` + strconv.Itoa(i*300) + `,"input_length":12000,"output_length":300,"hash_ids":[`)
	for k := range 24 {
		if k > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(i*7 + k))
	}
	sb.WriteString("]}")
	return sb.String()
}

// TestStreamingMemory reads a generated 300,000-row Mooncake trace (about
// 50 MB), through the transforms that re-open the source (rate, loop), and
// checks that the live heap after a GC stays flat between early and late
// in the file: reading streams, nothing is kept per request.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 50 MB file")
	}
	rows := 300_000
	if raceEnabled {
		rows = 60_000 // the race detector slows reading tenfold
	}
	path := filepath.Join(t.TempDir(), "big.jsonl")
	writeLines(t, path, rows, mooncakeLine)
	st, _ := os.Stat(path)

	src, err := OpenTransformed("mooncake:"+path, OpenOptions{}, Transforms{Rate: 50, Loop: 2, MaxPromptTokens: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer closeSource(src)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var early, peak uint64
	n := 0
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if len(r.HashIDs) != 16 {
			t.Fatalf("row %d: %d ids after the 8192-token cap", n, len(r.HashIDs))
		}
		switch {
		case n == rows/10:
			early = heap()
		case n%(rows/4) == 0:
			peak = max(peak, heap())
		}
	}
	if n != 2*rows {
		t.Fatalf("read %d requests, want %d", n, 2*rows)
	}
	// 1 MiB of slack covers the GC's own bookkeeping; a reader that kept
	// even 8 bytes per request would grow by 4.8 MB here.
	if peak > early+1<<20 {
		t.Errorf("live heap grew from %d to %d bytes reading a %d-byte file twice", early, peak, st.Size())
	}
	t.Logf("%d rows, %d MB file: live heap %d KB early, %d KB at most later", rows, st.Size()>>20, early>>10, peak>>10)
}
