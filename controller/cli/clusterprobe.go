package cli

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// memberProbeTimeout bounds each node's check in `cluster ls`: long
// enough for a loaded node on a LAN, short enough that a dead one does
// not hold the listing up for the whole --timeout.
const memberProbeTimeout = 2 * time.Second

// probeServers asks every node of the membership, in parallel, whether
// it answers (a gRPC health check on its gRPC address, over turbctl's
// own mutual TLS), and returns node ID → "up" or "unreachable: why".
//
// Why turbctl asks, not the leader: raft's last-contact figures live on
// the leader only, and reading them would need a new field in the API;
// what a person at turbctl needs first is whether a node answers at all.
// A node that answers the leader but not this workstation (a firewall)
// shows unreachable from here, and says so.
func (a *app) probeServers(ctx context.Context, servers []*turbulencev1.Server) map[string]string {
	out := make(map[string]string, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			st := a.probeServer(ctx, s.GetGrpcAddress())
			mu.Lock()
			out[s.GetId()] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (a *app) probeServer(ctx context.Context, addr string) string {
	if addr == "" {
		return "unknown: no gRPC address"
	}
	cfg, err := tlsutil.ClientConfig(a.tls, "")
	if err != nil {
		return "unknown: " + err.Error()
	}
	cfg.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, min(memberProbeTimeout, a.timeout))
	defer cancel()
	// Any answer, SERVING or not, is a node that is up: a follower
	// answers too. Only no answer is "unreachable".
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	switch {
	case err == nil:
		return "up"
	case ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded:
		return "unreachable: no answer within " + min(memberProbeTimeout, a.timeout).String()
	case status.Code(err) == codes.Unavailable:
		return "unreachable: " + status.Convert(err).Message()
	}
	// The node answered, if only to refuse the check.
	return "up"
}
