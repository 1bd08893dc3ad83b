package workload

import "testing"

// CSV formats are told apart by header names as the readers match them
// (request_tokens is BurstGPT's "Request tokens"), and a CSV with a prompt
// column is a prompt file without the prompts: prefix.
func TestOpenDetectsCSVByHeader(t *testing.T) {
	burst := write(t, "b.csv", "timestamp,model,request_tokens,response_tokens,total_tokens,log_type\n1,ChatGPT,10,5,15,Conversation log\n")
	src, err := Open(burst, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*BurstGPT); !ok {
		t.Errorf("request_tokens header: %T, want BurstGPT", src)
	}
	closeSource(src)
	prompts := write(t, "p.csv", "id,Prompt,output_tokens\n1,\"hello, world\",4\n")
	src, err = Open(prompts, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 1 || reqs[0].Prompt != "hello, world" || reqs[0].OutputTokens != 4 {
		t.Errorf("prompt csv: %+v", reqs)
	}
	closeSource(src)
	if _, err := Open(write(t, "x.csv", "a,b\n1,2\n"), OpenOptions{}); err == nil {
		t.Error("a CSV with unknown columns was accepted")
	}
}

// Leading blank lines do not hide a .jsonl's format.
func TestDetectSkipsLeadingBlankLines(t *testing.T) {
	p := write(t, "t.jsonl", "\n  \n\r\n"+`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}`+"\n")
	src, err := Open(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*Mooncake); !ok {
		t.Fatalf("opened as %T, want *Mooncake", src)
	}
	if got := drain(t, src); len(got) != 1 || got[0].PromptTokens != 10 {
		t.Errorf("got %+v", got)
	}
}
