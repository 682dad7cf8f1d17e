package connlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server accepts on a capped loopback listener and keeps every accepted
// connection until the test ends.
type server struct {
	l *Listener

	mu       sync.Mutex
	accepted []net.Conn
	refused  []string
	done     chan struct{}
	conns    sync.WaitGroup
}

func serve(t *testing.T, limits Limits) *server {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{done: make(chan struct{})}
	limits.OnRefuse = func(_ net.Addr, reason string) {
		s.mu.Lock()
		s.refused = append(s.refused, reason)
		s.mu.Unlock()
	}
	s.l = Wrap(inner, limits)
	go func() {
		defer close(s.done)
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, c)
			s.mu.Unlock()
			// Hold the connection until the client closes it, as a
			// server would.
			s.conns.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			})
		}
	}()
	t.Cleanup(func() {
		_ = s.l.Close()
		<-s.done
		s.mu.Lock()
		for _, c := range s.accepted {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.conns.Wait()
	})
	return s
}

// dialFrom connects to s from the loopback address src.
func dialFrom(t *testing.T, s *server, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer reports whether the server closed c: a read returns EOF
// (or a reset) at once rather than waiting for data that never comes.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
}

func waitStats(t *testing.T, s *server, what string, ok func(Stats) bool) Stats {
	t.Helper()
	var st Stats
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		st = s.l.Stats()
		return ok(st), fmt.Sprintf("%s: stats %+v", what, st)
	})
	return st
}

func TestListener_PerSourceCap(t *testing.T) {
	t.Parallel()
	s := serve(t, Limits{PerSource: 2, Total: 100})
	a1, a2 := dialFrom(t, s, "127.0.0.1"), dialFrom(t, s, "127.0.0.1")
	waitStats(t, s, "two connections open", func(st Stats) bool { return st.Open == 2 })
	over := dialFrom(t, s, "127.0.0.1")
	if !closedByServer(over) {
		t.Fatal("third connection from 127.0.0.1 was kept, want it closed (per-source cap 2)")
	}
	// Another source is not affected by the first one's cap.
	other := dialFrom(t, s, "127.0.0.2")
	st := waitStats(t, s, "three open from two sources", func(st Stats) bool { return st.Open == 3 })
	if st.Sources != 2 || st.Refused[ReasonPerSource] != 1 {
		t.Errorf("stats = %+v, want 2 sources and 1 per-source refusal", st)
	}
	// A closed connection gives its slot back.
	_ = a1.Close()
	waitStats(t, s, "slot given back", func(st Stats) bool { return st.Open == 2 })
	again := dialFrom(t, s, "127.0.0.1")
	waitStats(t, s, "slot reused", func(st Stats) bool { return st.Open == 3 })
	for _, c := range []net.Conn{a2, other, again} {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Errorf("connection within the caps: read = %v, want a timeout (kept open)", err)
		}
	}
}

func TestListener_TotalCap(t *testing.T) {
	t.Parallel()
	s := serve(t, Limits{PerSource: 2, Total: 3})
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		dialFrom(t, s, src)
	}
	waitStats(t, s, "three open", func(st Stats) bool { return st.Open == 3 })
	if c := dialFrom(t, s, "127.0.0.4"); !closedByServer(c) {
		t.Fatal("fourth connection kept, want it closed (total cap 3)")
	}
	st := waitStats(t, s, "one total refusal", func(st Stats) bool { return st.Refused[ReasonTotal] == 1 })
	if st.Open != 3 {
		t.Errorf("open = %d, want 3", st.Open)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.refused) != 1 || s.refused[0] != ReasonTotal {
		t.Errorf("OnRefuse saw %v, want [%s]", s.refused, ReasonTotal)
	}
}

func TestListener_NoCaps(t *testing.T) {
	t.Parallel()
	s := serve(t, Limits{})
	for range 20 {
		dialFrom(t, s, "127.0.0.1")
	}
	waitStats(t, s, "20 open", func(st Stats) bool { return st.Open == 20 })
}

func TestLimits_Validate(t *testing.T) {
	t.Parallel()
	if err := (Limits{PerSource: -1, Total: -2}).Validate(); err == nil {
		t.Error("negative caps accepted")
	}
	if err := (Limits{PerSource: 10, Total: 5}).Validate(); err != nil {
		t.Errorf("per-source above total refused: %v", err)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nofile uint64
		want   []int
		got    []int
		err    bool
	}{
		{nofile: 1 << 20, want: []int{256, 16384}, got: []int{256, 16384}},
		{nofile: 1024, want: []int{256, 16384}, got: []int{256, 256}},
		{nofile: 4096, want: []int{256, 1000, 3000}, got: []int{256, 832, 2496}},
		{nofile: 600, want: []int{256, 100}, err: true},
		{nofile: 100, want: []int{1}, err: true},
	}
	for _, tt := range tests {
		got, err := Budget(tt.nofile, tt.want...)
		if (err != nil) != tt.err {
			t.Errorf("Budget(%d, %v) error = %v, want error %v", tt.nofile, tt.want, err, tt.err)
			continue
		}
		if tt.err {
			continue
		}
		sum := 0
		for i := range got {
			sum += got[i]
			if got[i] != tt.got[i] {
				t.Errorf("Budget(%d, %v) = %v, want %v", tt.nofile, tt.want, got, tt.got)
				break
			}
		}
		if sum > int(tt.nofile)-Reserve {
			t.Errorf("Budget(%d, %v) = %v: sum %d over the limit less the reserve", tt.nofile, tt.want, got, sum)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
