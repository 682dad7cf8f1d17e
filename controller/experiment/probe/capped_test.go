package probe

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// TestPrometheus_AnswerCapped checks that an answer longer than
// MaxBodyBytes fails the sample with its own reason instead of being read
// whole. The server is a loopback stand-in answering the query API's
// JSON: no real Prometheus answers an instant query this big on demand.
func TestPrometheus_AnswerCapped(t *testing.T) {
	t.Parallel()
	answer := func(size int) string {
		// A scalar whose value is padded with leading zeros to size bytes.
		head, tail := `{"status":"success","data":{"resultType":"scalar","result":[0,"`, `7"]}}`
		return head + strings.Repeat("0", size-len(head)-len(tail)) + tail
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/big/api/v1/query", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, answer(MaxBodyBytes+1)) })
	mux.HandleFunc("/fits/api/v1/query", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, answer(MaxBodyBytes)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	sample := func(path string) Sample {
		p, err := New(experiment.Probe{Name: "q", Prometheus: &experiment.PrometheusProbe{URL: srv.URL + path, Query: "x", Max: ptr(10)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p.Sample(t.Context())
	}
	if s := sample("/fits"); !s.Pass || s.Value != 7 {
		t.Errorf("Sample() of an answer of exactly %d bytes = %+v, want a pass at 7", MaxBodyBytes, s)
	}
	if s := sample("/big"); s.Pass || s.Detail != FailError || !strings.Contains(s.Err, "answer longer than 1048576 bytes") {
		t.Errorf("Sample() of an answer of %d bytes = %+v, want an error failure naming the cap", MaxBodyBytes+1, s)
	}
}
