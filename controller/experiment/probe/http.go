package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// The limits of the probes' HTTP clients (docs/probes.md).
const (
	// MaxRedirects is how many redirects an HTTP probe follows; the next
	// one fails the sample.
	MaxRedirects = 3
	// MaxBodyBytes is how much of an answer's body is read (and timed);
	// the rest is not read. The probe judges status and latency, not
	// content, and a huge or endless body must not hold it.
	MaxBodyBytes = 1 << 20
	// maxHeaderBytes caps an answer's headers for the same reason.
	maxHeaderBytes = 64 << 10
)

// userAgent names the probe in the probed service's logs.
const userAgent = "turbulence-probe"

// httpProber is an HTTP probe: a GET of url, timed to the end of its
// (capped) body.
type httpProber struct {
	name       string
	interval   time.Duration
	url        string
	status     int
	maxLatency time.Duration // 0: no bound beyond timeout
	timeout    time.Duration
	client     *http.Client
}

// newHTTP checks an HTTP probe's spec and fills its defaults.
func newHTTP(name string, interval time.Duration, s experiment.HTTPProbe) (*httpProber, error) {
	var errs []error
	if _, err := checkURL("http.url", s.URL); err != nil {
		errs = append(errs, err)
	}
	status := s.ExpectStatus
	switch {
	case status == 0:
		status = http.StatusOK
	case status < 100 || status > 599:
		errs = append(errs, fmt.Errorf("http.expect_status: %d is not an HTTP status (100..599)", status))
	}
	timeout := s.Timeout.D()
	switch {
	case timeout == 0:
		timeout = DefaultHTTPTimeout
	case timeout < 0:
		errs = append(errs, fmt.Errorf("http.timeout: %v is negative", timeout))
	case timeout > MaxHTTPTimeout:
		errs = append(errs, fmt.Errorf("http.timeout: %v is over the maximum of %v", timeout, MaxHTTPTimeout))
	}
	maxLatency := s.MaxLatency.D()
	switch {
	case maxLatency < 0:
		errs = append(errs, fmt.Errorf("http.max_latency: %v is negative", maxLatency))
	case maxLatency > timeout && timeout > 0:
		// It could never trigger: the timeout ends the request first.
		errs = append(errs, fmt.Errorf("http.max_latency: %v is over http.timeout (%v), so it could never trigger", maxLatency, timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &httpProber{
		name: name, interval: interval, url: s.URL, status: status,
		maxLatency: maxLatency, timeout: timeout, client: newHTTPClient(timeout),
	}, nil
}

// newHTTPClient builds a client of its own rather than using
// http.DefaultClient: no proxy from the environment (a probe measures the
// path to the service, not to a proxy the controller's environment
// happens to name), no idle connections, a bounded number of redirects.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: timeout}).DialContext,
			DisableKeepAlives:      true,
			TLSHandshakeTimeout:    timeout,
			MaxResponseHeaderBytes: maxHeaderBytes,
		},
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			return nil
		},
	}
}

func (h *httpProber) Name() string            { return h.name }
func (h *httpProber) Interval() time.Duration { return h.interval }

// Sample GETs the URL once.
func (h *httpProber) Sample(ctx context.Context) Sample {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	start := time.Now()
	status, err := h.get(ctx)
	at := time.Now()
	latency := at.Sub(start)
	ms := float64(latency) / float64(time.Millisecond)
	switch {
	case err != nil && isTimeout(ctx, err):
		return failed(at, math.NaN(), FailTimeout, fmt.Sprintf("timeout: no complete answer from GET %s after %v (timeout %v)", h.url, latency.Round(time.Millisecond), h.timeout))
	case err != nil:
		return failed(at, math.NaN(), FailError, err.Error())
	case status != h.status:
		return failed(at, ms, FailStatus, fmt.Sprintf("status %d, want %d", status, h.status))
	case h.maxLatency > 0 && latency > h.maxLatency:
		return failed(at, ms, FailLatency, fmt.Sprintf("latency %v over max_latency %v", latency.Round(time.Microsecond), h.maxLatency))
	}
	return Sample{At: at, Value: ms, Pass: true, Detail: fmt.Sprintf("status %d", status)}
}

// get does the request and reads up to MaxBodyBytes of the body, so that
// the latency covers the answer and not only its headers.
func (h *httpProber) get(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", h.url, err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err // *url.Error names the method and URL
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
	// The connection is not reused (no keep-alives): a failed close
	// changes nothing the sample says.
	_ = resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("GET %s: reading the body: %w", h.url, err)
	}
	return resp.StatusCode, nil
}

// isTimeout tells a timeout of the probe's own from other failures. A
// cancelled parent context (the runner stopping) is not a timeout.
func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
