package gwsim

import (
	"sync"

	"github.com/google/uuid"
)

// store keeps the last keep accepted messages by id. Its memory is bounded by keep:
// the ring grows to keep slots and is then overwritten oldest first, and the index
// never holds more than keep ids.
type store struct {
	keep  int
	mu    sync.Mutex
	ring  []slot
	next  int // ring slot the next message goes to once the ring is full
	index map[uuid.UUID]int
}

type slot struct {
	id  uuid.UUID
	msg Message
}

func newStore(keep int) *store {
	if keep < 0 {
		keep = 0
	}
	return &store{keep: keep, index: make(map[uuid.UUID]int)}
}

func (st *store) put(id uuid.UUID, m Message) {
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

func (st *store) get(id string) (Message, bool) {
	key, err := uuid.Parse(id)
	if err != nil || st.keep == 0 {
		return Message{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	i, ok := st.index[key]
	if !ok {
		return Message{}, false
	}
	return st.ring[i].msg, true
}

// setStatus records the status of a receipt about to be sent for id, unless id is
// no longer kept or it would replace a final status with a non-final one.
func (st *store) setStatus(id uuid.UUID, status string) {
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
