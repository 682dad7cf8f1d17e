package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// get fetches url with a client of its own, whose idle connections are
// closed afterwards so that goleak sees none of its goroutines.
func get(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestServe_ServesOnlyGETMetrics(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	reg.MustRegister(GaugeFunc("up_gauge", "Up.", nil, func(emit Emit) { emit(1) }))
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	defer func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	}()
	base := "http://" + s.Addr()

	code, body, h := get(t, http.MethodGet, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "up_gauge 1\n") {
		t.Errorf("GET /metrics = %d %q, want 200 with up_gauge 1", code, body)
	}
	if got := h.Get("Content-Type"); !strings.HasPrefix(got, ContentType) {
		t.Errorf("Content-Type = %q, want %q", got, ContentType)
	}
	if !strings.Contains(body, "\nprocess_start_time_seconds ") || !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("GET /metrics lacks the process and Go runtime series:\n%s", body)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/metrics/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/metrics", http.StatusMethodNotAllowed},
	} {
		if code, _, _ := get(t, tt.method, base+tt.path); code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, code, tt.want)
		}
	}
}

// With Profiling the same listener serves the runtime profiles, GET
// only; without it /debug/pprof/ is 404 (TestServe_ServesOnlyGETMetrics).
func TestServe_ProfilingServesPprof(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, "127.0.0.1:0", NewRegistry(), nil, Profiling())
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	defer func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	}()
	base := "http://" + s.Addr()
	if code, body, _ := get(t, http.MethodGet, base+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ = %d, want 200 listing the profiles", code)
	}
	if code, body, _ := get(t, http.MethodGet, base+"/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("GET /debug/pprof/heap = %d, want 200 with a heap profile", code)
	}
	if code, _, _ := get(t, http.MethodPost, base+"/debug/pprof/symbol"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /debug/pprof/symbol = %d, want 405", code)
	}
	if code, _, _ := get(t, http.MethodGet, base+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics = %d beside the profiles, want 200", code)
	}
}

// TestServe_StopsWithContext shows that cancelling ctx closes the port:
// Wait returns and a new connection is refused.
func TestServe_StopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, "127.0.0.1:0", NewRegistry(), nil)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if code, _, _ := get(t, http.MethodGet, "http://"+s.Addr()+"/metrics"); code != http.StatusOK {
		t.Fatalf("GET /metrics = %d before stop", code)
	}
	cancel()
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		_ = c.Close()
		t.Errorf("dial %s after stop succeeded, want refused", s.Addr())
	}
}

func TestServe_RefusesBadAddress(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	tests := []struct {
		addr, wantErr string
	}{
		{"", "metrics address is empty"},
		{"127.0.0.1", "want host:port"},
		{"localhost:http:80", "want host:port"},
		{"127.0.0.1:99999", "invalid port"},
		{busy.Addr().String(), "address already in use"},
	}
	for _, tt := range tests {
		s, err := Serve(t.Context(), tt.addr, NewRegistry(), nil)
		if err == nil {
			t.Errorf("Serve(%q) started on %s, want error containing %q", tt.addr, s.Addr(), tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Serve(%q) = %v, want error containing %q", tt.addr, err, tt.wantErr)
		}
	}
}

// serveOnce serves g on a port of its own for one scrape and returns the
// body.
func serveOnce(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, "127.0.0.1:0", g, nil)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	defer func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	}()
	code, body, _ := get(t, http.MethodGet, "http://"+s.Addr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d:\n%s", code, body)
	}
	return body
}
