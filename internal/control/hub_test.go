package control

import (
	"fmt"
	"sync"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Under concurrent publishers every record is accounted for, per
// subscriber: received, or missed and reported (with a later record, or
// still pending), and the Hub's counters add up to the same.
func TestHubAccountsForEveryRecord(t *testing.T) {
	const publishers, perPublisher, subscribers, buffer = 4, 500, 3, 8
	h := NewHub(buffer)
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		subs[i] = h.Subscribe(false)
	}
	got := make([]uint64, subscribers) // received + reported missed
	var readers sync.WaitGroup
	for i, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case r := <-s.ch:
					got[i] += 1 + r.missed
				case <-s.Done():
					for {
						select {
						case r := <-s.ch:
							got[i] += 1 + r.missed
						default:
							return
						}
					}
				}
			}
		}()
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range perPublisher {
				h.Publish(&capture.Record{ID: fmt.Sprintf("%d-%d", p, i), Status: 200})
			}
		}()
	}
	pubs.Wait()
	h.Close()
	readers.Wait()
	const total = publishers * perPublisher
	for i, s := range subs {
		if n := got[i] + s.pending.Load(); n != total {
			t.Errorf("subscriber %d: received+missed %d, want %d", i, n, total)
		}
	}
	st := h.Stats()
	if st.Published+st.Dropped != total*subscribers || st.Subscribers != 0 {
		t.Errorf("hub stats %+v, want published+dropped = %d", st, total*subscribers)
	}
}

func TestHubFiltersAndCloses(t *testing.T) {
	h := NewHub(4)
	h.Publish(&capture.Record{ID: "nobody"}) // no subscriber: nothing counted
	all, noShadow := h.Subscribe(false), h.Subscribe(true)
	h.Publish(&capture.Record{ID: "1", RequestID: "r1"})
	h.Publish(&capture.Record{ID: "1", RequestID: "r1", Shadow: true})
	if st := h.Stats(); st.Subscribers != 2 || st.Published != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	if a, b := len(all.ch), len(noShadow.ch); a != 2 || b != 1 {
		t.Errorf("queued: all %d, exclude_shadow %d", a, b)
	}
	if r := <-noShadow.ch; r.shadow || r.requestID != "r1" {
		t.Errorf("exclude_shadow got %+v", r)
	}
	noShadow.Close()
	noShadow.Close() // idempotent
	if st := h.Stats(); st.Subscribers != 1 {
		t.Errorf("after one Close: %+v", st)
	}
	h.Close()
	select {
	case <-all.Done():
	default:
		t.Error("Hub.Close left a subscription open")
	}
	h.Publish(&capture.Record{ID: "late"})
	if len(all.ch) != 2 {
		t.Error("Publish after Close queued a record")
	}
	late := h.Subscribe(false)
	select {
	case <-late.Done():
	default:
		t.Error("Subscribe on a closed Hub is not done")
	}
	all.Close()
	h.Close()
}

// BenchmarkPublish is the cost Publish adds to each proxied request.
func BenchmarkPublish(b *testing.B) {
	rec := &capture.Record{ID: "abc-1", Path: "/v1/chat/completions", Model: "m", Status: 200, PromptTokens: 100, OutputTokens: 50}
	for _, n := range []int{0, 1, 4} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := NewHub(1)
			for range n {
				h.Subscribe(false) // never read: every publish after the first drops
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h.Publish(rec)
				}
			})
		})
	}
}
