package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// maxRequestBytes bounds what a client may send: a request is a few
	// dozen bytes, and the agent must not buffer whatever a peer streams.
	maxRequestBytes = 64 << 10
	// requestTimeout bounds how long a client may take to send its request
	// and to read the answer. The operation itself is not bounded here: a
	// halt takes as long as the reverts (each bounded by the manager).
	requestTimeout = 5 * time.Second
)

// Backend is what the server operates on: the agent. Its methods are
// called concurrently from connection goroutines.
type Backend interface {
	// Status returns the agent's state.
	Status(ctx context.Context) Status
	// Halt halts the agent locally: it reverts every fault before it
	// returns and refuses new ones until Resume. It returns the faults it
	// reverted.
	Halt(ctx context.Context, reason string) []Fault
	// Resume lifts a local halt and reports whether there was one. On error
	// the agent stays halted.
	Resume(ctx context.Context) (bool, error)
}

// Config configures a Server.
type Config struct {
	// Path is the socket's path; DefaultPath when empty.
	Path string
	// Backend is the agent the requests act on; required.
	Backend Backend
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
}

// Server serves the local API on a unix socket. Listen creates it; Run
// serves it until its context is done, then removes the socket.
type Server struct {
	path    string
	backend Backend
	log     *slog.Logger
	lis     *net.UnixListener
	euid    int

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen prepares the socket's directory, removes a stale socket and binds
// a new one with mode 0600. The socket accepts connections from then on
// (they wait in the backlog until Run serves them), so that an operator
// can halt the agent as early as possible.
func Listen(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("localapi: Backend is required")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lis, err := listen(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("local socket: %w", err)
	}
	return &Server{
		path:    cfg.Path,
		backend: cfg.Backend,
		log:     cfg.Logger.With("component", "localapi", "socket", cfg.Path),
		lis:     lis,
		euid:    os.Geteuid(),
		conns:   make(map[net.Conn]struct{}),
	}, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Run serves connections until ctx is done. Then it stops accepting,
// closes the open connections, waits for every handler (an operation in
// progress, e.g. a halt reverting faults, finishes first) and removes the
// socket. It returns nil unless accepting failed for another reason.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.lis.Close() })
	defer stop()
	s.log.Info("local API listening")
	var err error
	for {
		conn, aerr := s.lis.AcceptUnix()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("local socket: accept: %w", aerr)
				_ = s.lis.Close()
			}
			break
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer s.forget(conn)
			s.serve(ctx, conn)
		})
	}
	// Unblock handlers still reading a request or writing an answer.
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		s.log.Warn("cannot remove the local socket", "err", rerr)
	}
	s.log.Info("local API stopped")
	return err
}

func (s *Server) forget(c net.Conn) {
	_ = c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serve answers one request on conn.
func (s *Server) serve(ctx context.Context, conn *net.UnixConn) {
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	uid, err := peerUID(conn)
	switch {
	case err != nil:
		s.log.Warn("local request refused: peer credentials unknown", "err", err)
		s.answer(conn, &Response{Error: "permission denied: cannot verify the caller's credentials"})
		return
	case uid != 0 && uid != s.euid:
		// Layer 3 of the package doc: whatever the file modes say, only
		// root and the agent's own user may halt or inspect the agent.
		s.log.Warn("local request refused: caller is not root", "uid", uid)
		s.answer(conn, &Response{Error: fmt.Sprintf("permission denied: uid %d is not root", uid)})
		return
	}
	var req Request
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(conn, maxRequestBytes)))
	if err := dec.Decode(&req); err != nil {
		s.answer(conn, &Response{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	// The operation is not bounded by the connection's deadline: a halt
	// must finish reverting even if the client gave up waiting.
	_ = conn.SetDeadline(time.Time{})
	resp := s.do(ctx, req, uid)
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	s.answer(conn, resp)
}

func (s *Server) do(ctx context.Context, req Request, uid int) *Response {
	switch req.Op {
	case OpStatus:
		st := s.backend.Status(ctx)
		return &Response{OK: true, Status: &st}
	case OpHalt:
		s.log.Warn("local halt requested", "uid", uid, "reason", req.Reason)
		reverted := s.backend.Halt(ctx, req.Reason)
		st := s.backend.Status(ctx)
		return &Response{OK: true, Status: &st, Reverted: reverted}
	case OpResume:
		s.log.Warn("local resume requested", "uid", uid)
		was, err := s.backend.Resume(ctx)
		st := s.backend.Status(ctx)
		if err != nil {
			return &Response{Error: err.Error(), Status: &st}
		}
		return &Response{OK: true, Status: &st, WasHalted: was}
	default:
		return &Response{Error: fmt.Sprintf("unknown op %q: want %s, %s or %s", req.Op, OpStatus, OpHalt, OpResume)}
	}
}

func (s *Server) answer(conn net.Conn, resp *Response) {
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Warn("local answer not delivered", "err", err)
	}
}
