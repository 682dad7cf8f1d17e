package state

import (
	"iter"
	"sort"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// eventRing keeps the latest MaxEvents events, oldest first, in one
// fixed array used as a circle once it is full: recording an event costs
// the same whether the log holds ten events or is at its bound, with no
// copy of the window and no new array (issue 15 measured a halt of
// 10,000 faults at 420 ms when every event past the bound copied the
// whole log). The zero value is an empty ring.
type eventRing struct {
	// buf grows by append up to MaxEvents; from then on head is the
	// index of the oldest event, and a new one overwrites it.
	buf  []*turbulencev1.Event
	head int
}

// push records e as the newest, dropping the oldest if the ring is full.
func (r *eventRing) push(e *turbulencev1.Event) {
	if len(r.buf) < MaxEvents {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.head] = e
	r.head = (r.head + 1) % len(r.buf)
}

// len is how many events the ring holds.
func (r *eventRing) len() int { return len(r.buf) }

// at returns the i-th oldest event, 0 ≤ i < len.
func (r *eventRing) at(i int) *turbulencev1.Event { return r.buf[(r.head+i)%len(r.buf)] }

// last returns the newest event, or nil.
func (r *eventRing) last() *turbulencev1.Event {
	if len(r.buf) == 0 {
		return nil
	}
	return r.at(len(r.buf) - 1)
}

// after returns the index of the oldest event with a sequence number
// greater than seq (len if none): sequence numbers grow with the index.
func (r *eventRing) after(seq uint64) int {
	return sort.Search(len(r.buf), func(i int) bool { return r.at(i).GetSequence() > seq })
}

// from yields the events from index i on, oldest first.
func (r *eventRing) from(i int) iter.Seq[*turbulencev1.Event] {
	return func(yield func(*turbulencev1.Event) bool) {
		for ; i < len(r.buf); i++ {
			if !yield(r.at(i)) {
				return
			}
		}
	}
}
