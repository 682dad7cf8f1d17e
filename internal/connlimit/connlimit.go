// Package connlimit caps the connections a listener holds open: at most
// PerSource from one source address and at most Total in all. A
// connection over either cap is accepted from the kernel and closed at
// once, before anything reads from it.
//
// Why: a listener that accepts without bound hands every peer, with or
// without a certificate, one file descriptor per connection. Idle TCP
// connections to the raft port once took a controller to its descriptor
// limit, after which its gRPC port could not accept turbctl either
// (issue 13, finding 3). With a total cap on each port well below the
// process's RLIMIT_NOFILE (Budget), filling one port cannot starve the
// other; the per-source cap keeps one host from taking a port's whole
// budget from the others. Closing idle and slow connections is the
// caller's part (a TLS handshake deadline and an idle timeout), since
// only it knows when a connection is idle; this package only counts.
//
// Accepting and closing (rather than not accepting) keeps the kernel's
// backlog moving, so a legitimate peer queued behind a flood gets in.
package connlimit

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Reasons a connection is refused, as passed to Limits.OnRefuse.
const (
	ReasonPerSource = "per_source_limit"
	ReasonTotal     = "total_limit"
)

// Limits bound one listener.
type Limits struct {
	// PerSource is the most connections held open from one source IP
	// address (the port is ignored). Zero or less means no cap.
	PerSource int
	// Total is the most connections held open in all. Zero or less
	// means no cap.
	Total int
	// OnRefuse, if set, is called (without any lock held) for each
	// connection closed because of a cap, with its remote address and
	// the reason. It must not block: it runs on the accept path.
	OnRefuse func(remote net.Addr, reason string)
}

// Validate refuses caps that cannot work: a per-source cap above the
// total is allowed (it then never binds), negative values are not.
func (l Limits) Validate() error {
	var errs []error
	if l.PerSource < 0 {
		errs = append(errs, fmt.Errorf("per-source connection limit %d: must be 0 (no cap) or more", l.PerSource))
	}
	if l.Total < 0 {
		errs = append(errs, fmt.Errorf("total connection limit %d: must be 0 (no cap) or more", l.Total))
	}
	return errors.Join(errs...)
}

// Listener wraps a net.Listener with Limits.
type Listener struct {
	net.Listener
	limits Limits

	mu       sync.Mutex
	open     int
	bySource map[string]int
	refused  map[string]uint64
}

// Wrap returns l capped by limits.
func Wrap(l net.Listener, limits Limits) *Listener {
	return &Listener{Listener: l, limits: limits, bySource: make(map[string]int), refused: make(map[string]uint64)}
}

// Accept returns the next connection within the caps. Connections over a
// cap are closed and skipped; errors of the inner listener (closed,
// EMFILE) are returned as they are, for the caller's back-off.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		if reason := l.admit(src); reason != "" {
			_ = c.Close()
			if l.limits.OnRefuse != nil {
				l.limits.OnRefuse(c.RemoteAddr(), reason)
			}
			continue
		}
		return &conn{Conn: c, l: l, src: src}, nil
	}
}

// admit counts a new connection from src, or returns why it may not be.
func (l *Listener) admit(src string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.limits.Total > 0 && l.open >= l.limits.Total:
		l.refused[ReasonTotal]++
		return ReasonTotal
	case l.limits.PerSource > 0 && l.bySource[src] >= l.limits.PerSource:
		l.refused[ReasonPerSource]++
		return ReasonPerSource
	}
	l.open++
	l.bySource[src]++
	return ""
}

func (l *Listener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
}

// Stats is a listener's count of connections.
type Stats struct {
	// Open is how many accepted connections are open now.
	Open int
	// Sources is how many source addresses hold them.
	Sources int
	// Refused counts connections closed for a cap since the start, by
	// reason.
	Refused map[string]uint64
}

// Stats returns the counts now.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{Open: l.open, Sources: len(l.bySource), Refused: make(map[string]uint64, len(l.refused))}
	for k, v := range l.refused {
		st.Refused[k] = v
	}
	return st
}

// conn gives its slot back once, on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	src  string
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.src) })
	return c.Conn.Close()
}

// sourceOf is the host part of a remote address: connections from one
// machine count together whatever their source ports.
func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
