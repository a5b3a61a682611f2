package gwsim

import (
	"strconv"
	"sync"

	"github.com/google/uuid"
)

// key identifies a message: a UUID under REST v2, a positive integer under REST
// v1 (uuid is then zero). It is comparable, so a map can hold it without
// allocating.
type key struct {
	uuid uuid.UUID
	num  int64
}

// String returns the id as the API writes it: the UUID, or the integer in
// decimal.
func (k key) String() string {
	if k.num != 0 {
		return strconv.FormatInt(k.num, 10)
	}
	return k.uuid.String()
}

// store keeps the last keep accepted messages by id. Its memory is bounded by keep:
// the ring grows to keep slots and is then overwritten oldest first, and the index
// never holds more than keep ids.
type store struct {
	keep  int
	mu    sync.Mutex
	ring  []slot
	next  int // ring slot the next message goes to once the ring is full
	index map[key]int
}

type slot struct {
	id  key
	msg Message
}

func newStore(keep int) *store {
	if keep < 0 {
		keep = 0
	}
	return &store{keep: keep, index: make(map[key]int)}
}

func (st *store) put(id key, m Message) {
	if st.keep == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.ring) < st.keep {
		st.index[id] = len(st.ring)
		st.ring = append(st.ring, slot{id: id, msg: m})
		return
	}
	old := &st.ring[st.next]
	delete(st.index, old.id)
	*old = slot{id: id, msg: m}
	st.index[id] = st.next
	st.next++
	if st.next == st.keep {
		st.next = 0
	}
}

func (st *store) get(id key) (Message, bool) {
	if st.keep == 0 {
		return Message{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	i, ok := st.index[id]
	if !ok {
		return Message{}, false
	}
	return st.ring[i].msg, true
}

// setStatus records the status of a receipt about to be sent for id, unless id is
// no longer kept or it would replace a final status with a non-final one.
func (st *store) setStatus(id key, status string) {
	if st.keep == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	i, ok := st.index[id]
	if !ok {
		return
	}
	m := &st.ring[i].msg
	if finalStatus(m.Status) && !finalStatus(status) {
		return
	}
	m.Status = status
}
