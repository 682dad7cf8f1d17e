package probe

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
)

// newHTTPProbe builds an HTTP probe or fails t.
func newHTTPProbe(t *testing.T, s experiment.HTTPProbe) Prober {
	t.Helper()
	p, err := New(experiment.Probe{Name: "web", Interval: config.Duration(100 * time.Millisecond), HTTP: &s}, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return p
}

// TestHTTP_Healthy checks a passing sample against a real loopback server.
func TestHTTP_Healthy(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("User-Agent") != userAgent {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	t.Cleanup(srv.Close)
	p := newHTTPProbe(t, experiment.HTTPProbe{URL: srv.URL, MaxLatency: config.Duration(5 * time.Second)})
	before := time.Now()
	s := p.Sample(t.Context())
	if !s.Pass || s.Err != "" || s.Detail != "status 200" {
		t.Fatalf("Sample() = %+v, want a pass with detail %q", s, "status 200")
	}
	if s.Value < 0 || math.IsNaN(s.Value) || s.At.Before(before) {
		t.Errorf("Sample() = value %v at %v, want a latency ≥ 0 taken after %v", s.Value, s.At, before)
	}
	if hits.Load() != 1 {
		t.Errorf("the server saw %d requests, want 1", hits.Load())
	}
}

// TestHTTP_Failures checks each reason an HTTP sample fails, and that its
// Detail names it.
func TestHTTP_Failures(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	// /slow answers once the test ends or the client gives up: the
	// latency is decided by the probe's bounds, not by a timer here.
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// A port that was listening and is closed again: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/"
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		spec       experiment.HTTPProbe
		wantDetail string
		wantErr    string
		wantValue  bool // a latency was measured
	}{
		{"wrong status", experiment.HTTPProbe{URL: srv.URL + "/down"}, FailStatus, "status 503, want 200", true},
		{"other status expected", experiment.HTTPProbe{URL: srv.URL + "/down", ExpectStatus: 201}, FailStatus, "status 503, want 201", true},
		{"timeout", experiment.HTTPProbe{URL: srv.URL + "/slow", Timeout: config.Duration(200 * time.Millisecond)}, FailTimeout, "timeout: no complete answer from GET", false},
		{"refused", experiment.HTTPProbe{URL: closed}, FailError, "connection refused", false},
		{"redirect loop", experiment.HTTPProbe{URL: srv.URL + "/loop"}, FailError, "stopped after 3 redirects", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newHTTPProbe(t, tt.spec).Sample(t.Context())
			if s.Pass || s.Detail != tt.wantDetail || !strings.Contains(s.Err, tt.wantErr) {
				t.Errorf("Sample() = %+v, want a failure with detail %q and an error containing %q", s, tt.wantDetail, tt.wantErr)
			}
			if math.IsNaN(s.Value) == tt.wantValue {
				t.Errorf("Sample().Value = %v, want a latency: %v", s.Value, tt.wantValue)
			}
		})
	}

	t.Run("expected status passes", func(t *testing.T) {
		t.Parallel()
		s := newHTTPProbe(t, experiment.HTTPProbe{URL: srv.URL + "/created", ExpectStatus: 201}).Sample(t.Context())
		if !s.Pass {
			t.Errorf("Sample() = %+v, want a pass", s)
		}
	})
}

// TestHTTP_SlowHandlerFailsOnLatency checks that an answer that comes, but
// later than max_latency, fails on latency. The handler holds its answer
// until the probe's own clock has passed max_latency, so the test decides
// nothing by a sleep.
func TestHTTP_SlowHandlerFailsOnLatency(t *testing.T) {
	t.Parallel()
	const maxLatency = 50 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// Past max_latency by the server's own measure, which the
		// client's includes.
		start := time.Now()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for time.Since(start) <= 2*maxLatency {
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	s := newHTTPProbe(t, experiment.HTTPProbe{URL: srv.URL, MaxLatency: config.Duration(maxLatency)}).Sample(t.Context())
	if s.Pass || s.Detail != FailLatency || !strings.Contains(s.Err, "over max_latency 50ms") {
		t.Fatalf("Sample() = %+v, want a latency failure", s)
	}
	if s.Value <= float64(maxLatency/time.Millisecond) {
		t.Errorf("Sample().Value = %v ms, want more than %v", s.Value, maxLatency)
	}
}

// TestHTTP_BodyCapped checks that an endless body is read only up to
// MaxBodyBytes: the sample ends, and passes.
func TestHTTP_BodyCapped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	s := newHTTPProbe(t, experiment.HTTPProbe{URL: srv.URL}).Sample(t.Context())
	if !s.Pass {
		t.Fatalf("Sample() of an endless body = %+v, want a pass after reading %d bytes", s, MaxBodyBytes)
	}
}

// TestHTTP_CancelledIsNotTimeout checks that a sample cut short by its
// caller says so rather than blaming the service's latency.
func TestHTTP_CancelledIsNotTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := newHTTPProbe(t, experiment.HTTPProbe{URL: srv.URL}).Sample(ctx)
	if s.Pass || s.Detail != FailError || !strings.Contains(s.Err, "context canceled") {
		t.Errorf("Sample(cancelled ctx) = %+v, want an error failure naming the cancellation", s)
	}
}
