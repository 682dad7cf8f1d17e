package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ContentType is the media type of the text exposition format, which a
// scrape that asks for no other gets (the client library may append
// parameters such as its name escaping scheme).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

const (
	// shutdownTimeout bounds how long a stopping server waits for a
	// scrape in flight; a scrape takes milliseconds.
	shutdownTimeout = 5 * time.Second
	// readHeaderTimeout keeps a slow or idle client from holding a
	// connection (Slowloris) on a daemon that is not a web server.
	readHeaderTimeout = 10 * time.Second
	// maxHeaderBytes: a scrape's request is a few hundred bytes.
	maxHeaderBytes = 8 << 10
)

// Server is a running metrics endpoint (see Serve).
type Server struct {
	lis  net.Listener
	done chan struct{}
	err  error // set before done is closed
}

// CheckAddr reports whether addr is a usable listen address (host:port,
// the host may be empty for every interface), so that a command line can
// refuse a bad --metrics-addr as a usage error before anything starts.
func CheckAddr(addr string) error {
	if addr == "" {
		return errors.New("metrics address is empty")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("metrics address %q: want host:port: %w", addr, err)
	}
	return nil
}

// Serve binds addr and serves g on GET /metrics (and HEAD, as for any
// GET route) until ctx is done; every other path is 404 and every other
// method 405. It returns once the listener is bound, so a bad or busy
// address is an error here and not a log line later, and Addr is known
// (":0" picks a free port). After ctx is done the server stops accepting,
// lets a scrape in flight finish (for up to 5s), closes every connection
// and then Wait returns. A collector's failure at scrape time is logged to
// logger (nil discards).
//
// With Profiling among opts the same listener also serves Go's runtime
// profiles under /debug/pprof/ (docs/metrics.md): off by default, since a
// profile shows the daemon's internals to whoever can reach the port.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, logger *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g, logger))
	if o.profiling {
		mountProfiles(mux)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	s := &Server{lis: lis, done: make(chan struct{})}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	go func() {
		defer close(s.done)
		select {
		case err := <-serveErr:
			// The listener failed on its own; nothing to shut down.
			s.err = fmt.Errorf("metrics: serve %s: %w", lis.Addr(), err)
			return
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// A scrape outlived the timeout: cut it.
			_ = srv.Close()
		}
		// Serve has returned; http.ErrServerClosed is the stop we asked for.
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("metrics: serve %s: %w", lis.Addr(), err)
		}
	}()
	return s, nil
}

// Option changes what Serve serves.
type Option func(*options)

type options struct{ profiling bool }

// Profiling serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ beside /metrics: how the scale figures of
// docs/benchmarks.md are explained (where the CPU and the memory go).
func Profiling() Option { return func(o *options) { o.profiling = true } }

// mountProfiles adds the pprof handlers to mux, GET only like /metrics.
func mountProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Addr is the address the server is bound to.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Wait blocks until the server has stopped (ctx done, or the listener
// failed) and every connection is closed. It returns nil after a stop
// through ctx, the failure otherwise.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Handler serves g's exposition, negotiated as the scraper asks (text by
// default). It is what Serve mounts on /metrics, exported for daemons
// that already run an HTTP server. A collector that fails does not fail
// the scrape: its family is left out and the error logged to logger
// (nil discards), so that one bad series never blinds the operator to
// the rest.
func Handler(g prometheus.Gatherer, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{logger},
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape is one small page; refuse to queue behind a stuck one.
		MaxRequestsInFlight: 4,
		Timeout:             shutdownTimeout,
	})
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn("metrics: scrape", "error", fmt.Sprint(v...)) }
