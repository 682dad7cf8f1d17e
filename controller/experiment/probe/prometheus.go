package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// promProber is a Prometheus probe: an instant query whose single value
// must lie within bounds.
type promProber struct {
	name     string
	interval time.Duration
	query    string
	bounds   bounds
	api      promv1.API
}

// newPrometheus checks a Prometheus probe's spec.
func newPrometheus(name string, interval time.Duration, s experiment.PrometheusProbe) (*promProber, error) {
	var errs []error
	if _, err := checkURL("prometheus.url", s.URL); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(s.Query) == "" {
		errs = append(errs, errors.New("prometheus.query: empty"))
	}
	b := bounds{min: s.Min, max: s.Max}
	if err := b.check(); err != nil {
		errs = append(errs, fmt.Errorf("prometheus.%w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a, err := newAPI(s.URL)
	if err != nil {
		return nil, fmt.Errorf("prometheus.url: %w", err)
	}
	return &promProber{name: name, interval: interval, query: s.Query, bounds: b, api: a}, nil
}

func (q *promProber) Name() string            { return q.name }
func (q *promProber) Interval() time.Duration { return q.interval }

// Sample runs the query once.
func (q *promProber) Sample(ctx context.Context) Sample {
	v, s := instant(ctx, q.api, q.query)
	if !s.Pass {
		return s
	}
	if why := q.bounds.judge(v); why != "" {
		return failed(s.At, v, FailBounds, why)
	}
	return s
}

// newAPI builds a Prometheus API client with the same network rules as
// the HTTP probe: no proxy from the environment, no idle connections,
// and an answer capped at MaxBodyBytes (an instant query a probe can use
// returns one number; a bigger answer is an error, not truncated JSON).
func newAPI(address string) (promv1.API, error) {
	hc := newHTTPClient(QueryTimeout)
	hc.Transport = cappedTransport{hc.Transport}
	c, err := api.NewClient(api.Config{Address: address, Client: hc})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(c), nil
}

// instant runs query at the server's present time and reduces the answer
// to one number. The returned Sample passes when there was exactly one
// number; its caller judges the bounds.
func instant(ctx context.Context, a promv1.API, query string) (float64, Sample) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	// The server's own clock chooses "now": the controller's may differ.
	v, _, _, err := a.Query(ctx, query, time.Time{}, promv1.WithTimeout(QueryTimeout))
	at := time.Now()
	if err != nil {
		if isTimeout(ctx, err) {
			return math.NaN(), failed(at, math.NaN(), FailTimeout, fmt.Sprintf("timeout: query %q got no answer within %v", query, QueryTimeout))
		}
		return math.NaN(), failed(at, math.NaN(), FailError, fmt.Sprintf("query %q: %v", query, err))
	}
	switch r := v.(type) {
	case *model.Scalar:
		return float64(r.Value), Sample{At: at, Value: float64(r.Value), Pass: true, Detail: "scalar"}
	case model.Vector:
		switch {
		case len(r) == 0:
			return math.NaN(), failed(at, math.NaN(), FailNoData, fmt.Sprintf("no data: query %q returned an empty vector", query))
		case len(r) > 1:
			return math.NaN(), failed(at, math.NaN(), FailSeveral, fmt.Sprintf("query %q returned %d series, want exactly one (aggregate it, e.g. with sum()): %s", query, len(r), seriesList(r)))
		case r[0].Histogram != nil:
			return math.NaN(), failed(at, math.NaN(), FailWrongType, fmt.Sprintf("query %q returned a native histogram, want a number", query))
		}
		val := float64(r[0].Value)
		return val, Sample{At: at, Value: val, Pass: true, Detail: r[0].Metric.String()}
	case model.Matrix:
		return math.NaN(), failed(at, math.NaN(), FailWrongType, fmt.Sprintf("query %q returned a range vector, want an instant vector or a scalar", query))
	default:
		return math.NaN(), failed(at, math.NaN(), FailWrongType, fmt.Sprintf("query %q returned a %s, want an instant vector or a scalar", query, v.Type()))
	}
}

// seriesList names the first few series of v.
func seriesList(v model.Vector) string {
	const shown = 3
	var names []string
	for i, s := range v {
		if i == shown {
			names = append(names, fmt.Sprintf("and %d more", len(v)-shown))
			break
		}
		names = append(names, s.Metric.String())
	}
	return strings.Join(names, ", ")
}

// ErrBadQuery is what CheckQuery returns, wrapped with the server's
// message, for a query the server cannot parse.
var ErrBadQuery = errors.New("the query does not parse")

// ErrUnusableQuery is what CheckQuery returns for a query that parses but
// can never give a probe its single number (a range vector, a string).
var ErrUnusableQuery = errors.New("the query cannot give a probe a number")

// checkTime is when CheckQuery evaluates a query: long before any data,
// so that the server parses it and does next to no work. Evaluating also
// yields the result's type, which parsing alone would not.
var checkTime = time.Unix(0, 0)

// CheckQuery asks the Prometheus server at url whether query parses, as
// `turbctl experiment validate` does before anything runs. It returns an
// error wrapping ErrBadQuery with the server's message when the server
// calls the query bad data (Prometheus 2.42 answers a parse error so),
// one wrapping ErrUnusableQuery when it parses into a range vector or a
// string, and another error when the server could not be asked.
func CheckQuery(ctx context.Context, url, query string) error {
	if _, err := checkURL("url", url); err != nil {
		return err
	}
	if strings.TrimSpace(query) == "" {
		return fmt.Errorf("%w: the query is empty", ErrBadQuery)
	}
	a, err := newAPI(url)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	v, _, _, err := a.Query(ctx, query, checkTime, promv1.WithTimeout(QueryTimeout))
	var apiErr *promv1.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Type == promv1.ErrBadData:
		return fmt.Errorf("%w: %q: %s", ErrBadQuery, query, apiErr.Msg)
	case errors.As(err, &apiErr) && apiErr.Type == promv1.ErrExec:
		// It parsed; evaluating it failed (on no data at all), which
		// says nothing about the query's form.
		return nil
	case err != nil:
		return fmt.Errorf("asking %s whether the query parses: %w", url, err)
	}
	switch v.Type() {
	case model.ValVector, model.ValScalar:
		return nil
	case model.ValMatrix:
		return fmt.Errorf("%w: %q returns a range vector; a probe needs an instant vector or a scalar", ErrUnusableQuery, query)
	default:
		return fmt.Errorf("%w: %q returns a %s; a probe needs an instant vector or a scalar", ErrUnusableQuery, query, v.Type())
	}
}

// errBodyTooLarge fails an answer longer than MaxBodyBytes.
var errBodyTooLarge = fmt.Errorf("answer longer than %d bytes", MaxBodyBytes)

// cappedTransport ends the read of an answer's body with errBodyTooLarge
// past MaxBodyBytes: the Prometheus client reads whole bodies.
type cappedTransport struct{ next http.RoundTripper }

func (t cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: MaxBodyBytes}
	return resp, nil
}

// cappedBody reads at most left more bytes, then fails.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
