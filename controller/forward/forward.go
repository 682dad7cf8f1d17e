package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Metadata keys of a forwarded call.
const (
	// MDForwardedFor carries the original caller's identity ("role/name").
	MDForwardedFor = "turbulence-forwarded-for"
	// MDHops counts the forwards a call went through.
	MDHops = "turbulence-forward-hops"
	// MDConsistent, set to "true" by a caller, asks for a consistent read:
	// the read is served by the leader after a barrier instead of from
	// the local, possibly stale, state of whichever node was reached.
	MDConsistent = "turbulence-consistent-read"
)

// Defaults of Config.
const (
	DefaultHoldTimeout = 5 * time.Second
	// DefaultCallTimeout bounds one forwarded call when the caller gave
	// no deadline.
	DefaultCallTimeout = 10 * time.Second
	// maxHops is the hop limit: a call is forwarded at most once.
	maxHops = 1
	// retryMin and retryMax bound the jittered pause between attempts
	// while an election runs.
	retryMin = 20 * time.Millisecond
	retryMax = 100 * time.Millisecond
)

// ErrNoLeader is the cause of the Unavailable answer given when no leader
// could be reached within the hold time.
var ErrNoLeader = errors.New("no controller leader reachable")

// Handle is the part of the raft node the forwarder needs (Consul's
// narrow Handle rather than *raft.Raft).
type Handle interface {
	// IsLeader reports whether this node is the raft leader now.
	IsLeader() bool
	// LeaderGRPCAddr is the leader's gRPC address, "" when unknown.
	LeaderGRPCAddr() string
	// Barrier returns once every entry committed before it is applied to
	// this node's state, and fails if this node is not the leader. Raft
	// commits the barrier through a quorum, so it also proves that no
	// newer leader exists: a read after it is linearizable.
	Barrier(timeout time.Duration) error
}

// Config configures a Forwarder.
type Config struct {
	Handle Handle
	// TLS is this controller's own certificate, presented to the leader.
	TLS tlsutil.Files
	// Services are the full names of the services whose writes are
	// forwarded ("turbulence.v1.ControlService"). Other services (agent
	// streams, health) are left alone.
	Services []string
	// LeaderReads are the full names of the reads that only the leader
	// can answer, because what they read is its soft state rather than
	// the replicated one (host metrics from the agents' heartbeats):
	// they are always routed to the leader, without a barrier, which
	// they do not need. Like writes, they are held while no leader is
	// reachable.
	LeaderReads []string
	// HoldTimeout bounds how long a write waits for a reachable leader.
	HoldTimeout time.Duration
	Logger      *slog.Logger
}

// Forwarder forwards writes from followers to the leader. It is safe for
// concurrent use.
type Forwarder struct {
	cfg    Config
	creds  credentials.TransportCredentials
	logger *slog.Logger

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // by leader gRPC address
	closed bool
}

// New returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Handle == nil {
		return nil, errors.New("forward: Handle is required")
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tc, err := tlsutil.ClientConfig(cfg.TLS, "")
	if err != nil {
		return nil, fmt.Errorf("forward: client TLS: %w", err)
	}
	// The leader is whoever raft names; make sure it is a controller and
	// not some other holder of a certificate from our CA.
	tc.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	return &Forwarder{
		cfg:    cfg,
		creds:  credentials.NewTLS(tc),
		logger: cfg.Logger.With("component", "forward"),
		conns:  make(map[string]*grpc.ClientConn),
	}, nil
}

// Close releases the connections to leaders.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for addr, c := range f.conns {
		_ = c.Close()
		delete(f.conns, addr)
	}
}

// Unary is the server interceptor. Install it before any interceptor that
// authorises, so that handlers see the forwarded caller identity.
func (f *Forwarder) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, hops, err := inbound(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case slices.Contains(f.cfg.LeaderReads, info.FullMethod):
			return f.route(ctx, req, info.FullMethod, hops, handler, routeLeaderRead)
		case f.isWrite(info.FullMethod):
			return f.route(ctx, req, info.FullMethod, hops, handler, routeWrite)
		case f.isForwarded(info.FullMethod) && consistentRead(ctx):
			return f.route(ctx, req, info.FullMethod, hops, handler, routeConsistentRead)
		}
		return handler(ctx, req)
	}
}

// isWrite reports whether a method is a write of a forwarded service.
// Reads are named Get… or List… (docs/style.md, API conventions); everything else is a
// write, so a new mutating RPC is forwarded without anyone remembering to
// list it.
func (f *Forwarder) isWrite(fullMethod string) bool {
	_, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return f.isForwarded(fullMethod) && !strings.HasPrefix(method, "Get") && !strings.HasPrefix(method, "List")
}

// isForwarded reports whether a method belongs to a forwarded service.
func (f *Forwarder) isForwarded(fullMethod string) bool {
	svc, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return ok && slices.Contains(f.cfg.Services, svc)
}

// consistentRead reports whether the caller asked for a consistent read.
func consistentRead(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, MDConsistent)
	return len(v) > 0 && v[0] == "true"
}

// routeKind is what route does with a call.
type routeKind int

const (
	routeWrite routeKind = iota + 1
	// routeConsistentRead passes a barrier on the leader first.
	routeConsistentRead
	// routeLeaderRead runs on the leader as it is (LeaderReads).
	routeLeaderRead
)

// route runs a write, or a consistent or leader-only read, here on the leader or
// forwards it, holding it while no leader is reachable. A consistent read
// passes a barrier on the leader first, so that it sees every write
// acknowledged before it by any leader (a new leader's state may lag its
// log until then).
func (f *Forwarder) route(ctx context.Context, req any, method string, hops int, handler grpc.UnaryHandler, kind routeKind) (any, error) {
	read := kind != routeWrite
	msg, ok := req.(proto.Message)
	if !ok {
		return handler(ctx, req)
	}
	if !read {
		// Idempotent retries need a request ID from the first attempt on.
		fillRequestID(msg)
	}
	caller, idErr := CallerIdentity(ctx)
	hold := time.NewTimer(f.cfg.HoldTimeout)
	defer hold.Stop()
	var lastErr error
	for attempt := 1; ; attempt++ {
		if f.cfg.Handle.IsLeader() && kind == routeLeaderRead {
			return handler(ctx, req)
		}
		if f.cfg.Handle.IsLeader() && read {
			if err := f.cfg.Handle.Barrier(f.cfg.HoldTimeout); err != nil {
				lastErr = status.Errorf(codes.Unavailable, "consistent read: barrier: %v", err)
			} else {
				return handler(ctx, req)
			}
		} else if f.cfg.Handle.IsLeader() {
			resp, err := handler(ctx, req)
			// A write that failed because this node stopped leading
			// mid-call is tried again at the new leader (the request ID
			// makes that safe); any other answer is final.
			if err == nil || status.Code(err) != codes.Unavailable || f.cfg.Handle.IsLeader() {
				return resp, err
			}
			lastErr = err
		}
		switch {
		case hops >= maxHops:
			// Hop limit: the node that forwarded this call retries.
			return nil, status.Errorf(codes.Unavailable, "this controller is not the raft leader and a forwarded call is not forwarded again (hop limit %d)", maxHops)
		case idErr != nil:
			// Without a verified caller there is nothing to vouch for;
			// the handler refuses it with the right code.
			return handler(ctx, req)
		}
		if addr := f.cfg.Handle.LeaderGRPCAddr(); addr != "" {
			resp, err := f.forward(ctx, addr, method, msg, caller, hops+1, kind == routeConsistentRead)
			if err == nil || status.Code(err) != codes.Unavailable {
				return resp, err
			}
			lastErr = err
			f.logger.Debug("forward to leader failed; holding", "leader", addr, "method", method, "attempt", attempt, "error", err)
		}
		pause := time.NewTimer(retryMin + rand.N(retryMax-retryMin))
		select {
		case <-ctx.Done():
			pause.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-hold.C:
			pause.Stop()
			if lastErr == nil {
				lastErr = errors.New("no leader elected")
			}
			return nil, status.Errorf(codes.Unavailable, "%v within the %s hold time: %v", ErrNoLeader, f.cfg.HoldTimeout, lastErr)
		case <-pause.C:
		}
	}
}

// forward sends the call to the leader on behalf of caller.
func (f *Forwarder) forward(ctx context.Context, addr, method string, req proto.Message, caller tlsutil.Identity, hops int, consistent bool) (any, error) {
	resp, err := newResponse(method)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	conn, err := f.conn(addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial leader %s: %v", addr, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	// A fresh outgoing context: nothing of the caller's own metadata is
	// passed on, only what the leader needs to authorise the caller.
	md := metadata.Pairs(MDForwardedFor, caller.String(), MDHops, strconv.Itoa(hops))
	if consistent {
		md.Set(MDConsistent, "true")
	}
	out := metadata.NewOutgoingContext(ctx, md)
	if err := conn.Invoke(out, method, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (f *Forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("forwarder closed")
	}
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(f.creds))
	if err != nil {
		return nil, err
	}
	f.conns[addr] = c
	return c, nil
}

// newResponse makes an empty response message of a method, found through
// the registered service descriptor, so that any service can be forwarded
// without a hand-written table.
func newResponse(fullMethod string) (proto.Message, error) {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, fmt.Errorf("forward %s: service not registered: %w", fullMethod, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("forward %s: %s is not a service", fullMethod, svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("forward %s: no such method", fullMethod)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, fmt.Errorf("forward %s: response type: %w", fullMethod, err)
	}
	return mt.New().Interface(), nil
}

// fillRequestID sets a request_id string field that is empty.
func fillRequestID(m proto.Message) {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("request_id")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return
	}
	if r.Get(fd).String() == "" {
		r.Set(fd, protoreflect.ValueOfString(NewRequestID()))
	}
}

// NewRequestID returns a fresh server-made request ID.
func NewRequestID() string {
	const hexdigits = "0123456789abcdef"
	var b [16]byte
	for i := range b {
		b[i] = hexdigits[rand.N(len(hexdigits))]
	}
	return "fwd-" + string(b[:])
}
