package sim

import (
	"container/list"
	"errors"
	"hash/maphash"
	"sync"
)

// errQueueFull is returned when the waiting queue is at MaxWaiting.
var errQueueFull = errors.New("waiting queue full")

// scheduler admits sequences into Slots batch slots in FIFO order.
type scheduler struct {
	slots, maxWaiting int

	mu      sync.Mutex
	running int
	waiting list.List // of *ticket
}

// ticket is one request's place in the scheduler: admitted is closed once
// the request holds a slot; el is its place in the queue until then.
type ticket struct {
	admitted chan struct{}
	el       *list.Element
}

// enqueue takes a slot at once when one is free and nobody waits, else a
// place at the back of the queue; errQueueFull when the queue is at its
// bound. Each ticket must end with exactly one leave (the request gave
// up, admitted or not) or, once admitted, one release.
func (s *scheduler) enqueue() (*ticket, error) {
	t := &ticket{admitted: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running < s.slots && s.waiting.Len() == 0 {
		s.running++
		close(t.admitted)
		return t, nil
	}
	if s.maxWaiting > 0 && s.waiting.Len() >= s.maxWaiting {
		return nil, errQueueFull
	}
	t.el = s.waiting.PushBack(t)
	return t, nil
}

// leave ends t for a request that gave up: out of the queue if it was
// still waiting, its slot handed on if it had just been admitted.
func (s *scheduler) leave(t *ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-t.admitted:
		s.releaseLocked()
	default:
		s.waiting.Remove(t.el)
	}
}

func (s *scheduler) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *scheduler) releaseLocked() {
	if front := s.waiting.Front(); front != nil {
		s.waiting.Remove(front)
		close(front.Value.(*ticket).admitted) // the slot passes to the next in line
		return
	}
	s.running--
}

// load returns the running and waiting counts.
func (s *scheduler) load() (running, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.waiting.Len()
}

// prefixCache is an LRU set of prompt-block chain hashes.
type prefixCache struct {
	mu    sync.Mutex
	cap   int
	order list.List // of uint64, front = most recent
	items map[uint64]*list.Element
	seed  maphash.Seed
}

func newPrefixCache(capacity int) *prefixCache {
	return &prefixCache{cap: capacity, items: map[uint64]*list.Element{}, seed: maphash.MakeSeed()}
}

// lookupAndInsert returns how many leading blocks of ids (block tokens
// each) were cached, then caches all full blocks.
func (c *prefixCache) lookupAndInsert(ids []uint, block int) (hitBlocks, blocks int) {
	blocks = len(ids) / block
	if blocks == 0 {
		return 0, 0
	}
	hashes := make([]uint64, blocks)
	var h maphash.Hash
	h.SetSeed(c.seed)
	buf := make([]byte, 0, block*4)
	for b := 0; b < blocks; b++ {
		buf = buf[:0]
		for _, id := range ids[b*block : (b+1)*block] {
			buf = append(buf, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
		}
		_, _ = h.Write(buf) // chained: the hash covers the whole prefix
		hashes[b] = h.Sum64()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	counting := true
	for _, hv := range hashes {
		if el, ok := c.items[hv]; ok {
			c.order.MoveToFront(el)
			if counting {
				hitBlocks++
			}
			continue
		}
		counting = false
		c.items[hv] = c.order.PushFront(hv)
		if c.order.Len() > c.cap {
			old := c.order.Back()
			c.order.Remove(old)
			delete(c.items, old.Value.(uint64))
		}
	}
	return hitBlocks, blocks
}
