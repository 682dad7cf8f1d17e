package agentapi

import (
	"sync"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// outbox is a session's queue of messages for its agent and the one
// goroutine that sends them, which runs only while there is something
// to send.
//
// Why not a goroutine per session waiting on a channel: an idle fleet
// of 10,000 agents would hold 10,000 parked senders and 10,000 channel
// buffers on the leader, some 7 KB an agent for nothing
// (docs/benchmarks.md). The rules are those of a dedicated sender: one
// Send at a time (a gRPC stream is not safe for concurrent Send), the
// Welcome first, then a lease renewal ahead of any queued command, and
// a bounded queue whose overflow ends the session (the package doc).
type outbox struct {
	mu    sync.Mutex
	queue []*turbulencev1.ControllerMessage
	// renew: a lease renewal is wanted; it goes out ahead of queue (but
	// never before the first message, the Welcome).
	renew bool
	// sentFirst: the first message has been sent.
	sentFirst bool
	// sending: a sender goroutine runs; idle is signalled when it ends.
	sending bool
	idle    *sync.Cond
	// stopped: the session is over; nothing more is sent.
	stopped bool
	// send sends one message on the stream, false if the stream failed;
	// renewal makes a lease renewal. Both set by attach: until then
	// messages only queue (tests read them with take).
	send    func(*turbulencev1.ControllerMessage) bool
	renewal func() *turbulencev1.ControllerMessage
}

// push queues m, reporting false when the queue is full (the caller ends
// the session). Messages pushed after stop are dropped.
func (o *outbox) push(m *turbulencev1.ControllerMessage) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return true
	}
	if len(o.queue) >= sendQueueSize {
		return false
	}
	o.queue = append(o.queue, m)
	o.kick()
	return true
}

// wantRenewal asks for a lease renewal ahead of whatever is queued; one
// pending request stands for any number.
func (o *outbox) wantRenewal() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return
	}
	o.renew = true
	o.kick()
}

// attach starts sending on a stream: whatever is queued goes now.
func (o *outbox) attach(send func(*turbulencev1.ControllerMessage) bool, renewal func() *turbulencev1.ControllerMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.send, o.renewal = send, renewal
	o.kick()
}

// stop ends sending and waits for a send in flight: no Send may follow
// the handler's return.
func (o *outbox) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	o.queue = nil
	for o.sending {
		o.idleCond().Wait()
	}
}

func (o *outbox) idleCond() *sync.Cond {
	if o.idle == nil {
		o.idle = sync.NewCond(&o.mu)
	}
	return o.idle
}

// kick starts the sender if there is work and none runs. Caller holds mu.
func (o *outbox) kick() {
	if o.sending || o.send == nil || (!o.renew && len(o.queue) == 0) {
		return
	}
	o.sending = true
	go o.drain()
}

// drain sends until nothing is left, then ends.
func (o *outbox) drain() {
	for {
		o.mu.Lock()
		m := o.next()
		if m == nil || o.stopped {
			o.sending = false
			o.idleCond().Broadcast()
			o.mu.Unlock()
			return
		}
		send := o.send
		o.mu.Unlock()
		if !send(m) {
			o.mu.Lock()
			o.stopped, o.queue, o.sending = true, nil, false
			o.idleCond().Broadcast()
			o.mu.Unlock()
			return
		}
	}
}

// next takes the message to send now: the first message, then a wanted
// renewal, then the queue in order; nil when there is none. Caller
// holds mu.
func (o *outbox) next() *turbulencev1.ControllerMessage {
	if o.renew && o.sentFirst {
		o.renew = false
		return o.renewal()
	}
	if len(o.queue) == 0 {
		// A renewal asked for before the Welcome went waits for it.
		return nil
	}
	m := o.queue[0]
	o.queue[0] = nil
	o.queue = o.queue[1:]
	if len(o.queue) == 0 {
		o.queue = nil // an idle session holds no buffer
	}
	o.sentFirst = true
	return m
}

// take removes and returns what is queued, for tests of a session with
// no stream attached.
func (o *outbox) take() []*turbulencev1.ControllerMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	return q
}
