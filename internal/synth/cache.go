package synth

import "sync"

// blockKey names a block: the hash chain up to it and the block size.
type blockKey struct {
	chain  uint64
	tokens int
}

// blockCache is a least-recently-used cache of block texts bounded by their
// total size in bytes. It is safe for concurrent use.
type blockCache struct {
	mu         sync.Mutex
	limit, use int // bytes
	entries    map[blockKey]*cacheEntry
	head       cacheEntry // sentinel: head.next is the most recent
}

type cacheEntry struct {
	key        blockKey
	text       string
	prev, next *cacheEntry
}

func newBlockCache(limit int) *blockCache {
	c := &blockCache{limit: limit, entries: map[blockKey]*cacheEntry{}}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *blockCache) get(k blockKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return "", false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.text, true
}

func (c *blockCache) put(k blockKey, text string) {
	if len(text) > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok { // another goroutine made it first
		c.unlink(e)
		c.pushFront(e)
		return
	}
	e := &cacheEntry{key: k, text: text}
	c.entries[k] = e
	c.pushFront(e)
	c.use += len(text)
	for c.use > c.limit {
		old := c.head.prev
		c.unlink(old)
		delete(c.entries, old.key)
		c.use -= len(old.text)
	}
}

// len returns the number of cached blocks.
func (c *blockCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *blockCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *blockCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}
