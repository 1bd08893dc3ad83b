package workload

import (
	"io"
	"strings"
	"testing"
	"time"
)

// burstFixture is the head of BurstGPT_1.csv as the BurstGPT README shows
// it, plus a failed request (0 response tokens) and a float timestamp.
const burstFixture = `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,230,1317,Conversation log
118,GPT-4,417,276,693,Conversation log
120,GPT-4,300,0,300,API log
130.25,ChatGPT,12,3,15,API log
`

// burst3Fixture follows BurstGPT_3's 8-column layout.
const burst3Fixture = `Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type
10,9a1f0c9e-1b7e-4c59-9d57-3f4b2b8c2f10,1.5,ChatGPT,100,20,120,Conversation log
12,,0.8,GPT-4,50,10,60,API log
30,9a1f0c9e-1b7e-4c59-9d57-3f4b2b8c2f10,2.0,ChatGPT,400,30,430,Conversation log
`

func TestBurstGPT(t *testing.T) {
	src, err := Open("burstgpt:"+write(t, "b.csv", burstFixture), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(io.Closer).Close()
	reqs := drain(t, src)
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4 (the failed one left out)", len(reqs))
	}
	if r := reqs[0]; r.Offset != 0 || r.PromptTokens != 472 || r.OutputTokens != 18 || r.TraceModel != "ChatGPT" || r.Model != "" || !r.Stream {
		t.Errorf("first %+v", r)
	}
	if r := reqs[2]; r.Offset != 113*time.Second || r.TraceModel != "GPT-4" {
		t.Errorf("third %+v", r)
	}
	if r := reqs[3]; r.Index != 3 || r.Offset != 125250*time.Millisecond {
		t.Errorf("fourth %+v", r)
	}
	if w := warnings(src); len(w) != 1 || !strings.Contains(w[0], "left out 1 requests that failed") {
		t.Errorf("warnings %v", w)
	}
}

func TestBurstGPTSessions(t *testing.T) {
	src, err := OpenBurstGPT(write(t, "b3.csv", burst3Fixture), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 3 || reqs[0].Session == "" || reqs[0].Turn != 0 || reqs[1].Session != "" ||
		reqs[2].Session != reqs[0].Session || reqs[2].Turn != 1 || reqs[2].Offset != 20*time.Second || reqs[1].PromptTokens != 50 {
		t.Fatalf("%+v", reqs)
	}
}

func TestBurstGPTMalformed(t *testing.T) {
	if _, err := OpenBurstGPT(write(t, "h.csv", "Timestamp,Model,Total tokens\n"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "lacks Request tokens, Response tokens") {
		t.Errorf("bad header: %v", err)
	}
	for line, reason := range map[string]string{
		"x,ChatGPT,1,2,3,API log":     "Timestamp",
		"-1,ChatGPT,1,2,3,API log":    "Timestamp",
		"NaN,ChatGPT,1,2,3,API log":   "Timestamp",
		"9,ChatGPT,one,2,3,API log":   "Request tokens",
		"9,ChatGPT,1,-2,3,API log":    "Response tokens",
		"9,ChatGPT,1,2,3,API log,odd": "7 fields",
	} {
		p := write(t, "b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n"+line+"\n")
		src, _ := OpenBurstGPT(p, OpenOptions{})
		_, _ = src.Next()
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), "burstgpt "+p+" line 3: ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%q: err = %v, want line 3 and %q", line, err, reason)
		}
		skip, _ := OpenBurstGPT(p, OpenOptions{SkipInvalid: true})
		if got := drain(t, skip); len(got) != 1 || skip.Skipped() != 1 {
			t.Errorf("%q: skip-invalid gave %d, skipped %d", line, len(got), skip.Skipped())
		}
	}
	p := write(t, "u.csv", "Timestamp,Request tokens,Response tokens\n9,1,1\n4,1,1\n")
	src, _ := OpenBurstGPT(p, OpenOptions{})
	reqs := drain(t, src)
	if len(reqs) != 2 || reqs[1].Offset != 0 || len(src.Warnings()) != 2 || !strings.Contains(src.Warnings()[1], "backwards 1 times") {
		t.Errorf("unsorted file: %+v, %v", reqs, src.Warnings())
	}
}

func FuzzBurstGPT(f *testing.F) {
	f.Add([]byte(burstFixture))
	f.Add([]byte(burst3Fixture))
	f.Add([]byte("Request tokens,Timestamp,Response tokens\n\"1\",\"2.5\",\"3\"\n,,\n1e3,0,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := OpenBurstGPT(write(t, "f.csv", string(data)), OpenOptions{SkipInvalid: true})
		if err != nil {
			return
		}
		defer src.Close()
		for {
			r, err := src.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("skip-invalid still failed: %v", err)
				}
				break
			}
			if r.Offset < 0 || r.PromptTokens < 0 || r.OutputTokens < 1 {
				t.Fatalf("%+v", r)
			}
		}
	})
}
