package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// mutationAttempts is how often a mutating call is tried when the
// controller is unavailable; every attempt carries the same request ID, so
// the controller applies the request at most once.
const mutationAttempts = 3

// mdConsistentRead is the request metadata that asks a controller for a
// consistent read. It is the controller's forward.MDConsistent; turbctl
// does not import controller packages (test/deps_test.go), and
// controller/consistent_read_test.go checks the two agree end to end.
const mdConsistentRead = "turbulence-consistent-read"

// consistentHelp is the help of --consistent, the same on every read
// command.
const consistentHelp = "read through the raft leader, after a barrier, so the answer includes every write acknowledged before it (default: the local state of the controller asked, which may lag the leader by a moment)"

// consistentFlag adds --consistent to a read command and returns it.
func (a *app) consistentFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().BoolVar(&a.consistent, "consistent", false, consistentHelp)
	return cmd
}

// client is an open connection to one controller.
type client struct {
	a    *app
	conn *grpc.ClientConn
	api  turbulencev1.ControlServiceClient
}

// dial opens a mutual-TLS connection to the controller. It does not wait
// for the connection; the first call does.
func (a *app) dial() (*client, error) {
	var missing []string
	for _, f := range []struct{ flag, env, val string }{
		{"--ca", EnvCA, a.tls.CA},
		{"--cert", EnvCert, a.tls.Cert},
		{"--key", EnvKey, a.tls.Key},
	} {
		if f.val == "" {
			missing = append(missing, f.flag+" ("+f.env+")")
		}
	}
	if len(missing) > 0 {
		return nil, usagef("no client certificate: turbctl always uses mutual TLS; set %s", strings.Join(missing, ", "))
	}
	cfg, err := tlsutil.ClientConfig(a.tls, a.serverName)
	if err != nil {
		return nil, fmt.Errorf("load TLS files: %w", err)
	}
	// Halt, status and every other answer must come from a controller,
	// not from whoever holds some certificate of the fleet's CA.
	cfg.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	conn, err := grpc.NewClient(a.controller, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithChainUnaryInterceptor(checkBounds))
	if err != nil {
		return nil, invalidf("--controller %q: %v", a.controller, err)
	}
	return &client{a: a, conn: conn, api: turbulencev1.NewControlServiceClient(conn)}, nil
}

// close releases the connection. Its error is of no use to anyone: every
// call on it has finished.
func (c *client) close() { _ = c.conn.Close() }

// call runs fn once with the per-call deadline.
func (c *client) call(ctx context.Context, fn func(ctx context.Context) error) error {
	return c.callRead(ctx, c.a.consistent, fn)
}

// callRead is call with the consistency of a read chosen by the caller
// rather than by --consistent.
func (c *client) callRead(ctx context.Context, consistent bool, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.a.timeout)
	defer cancel()
	if consistent {
		// The controller routes the read to the leader, which answers
		// after a raft barrier (controller/forward).
		ctx = metadata.AppendToOutgoingContext(ctx, mdConsistentRead, "true")
	}
	return c.wrap(fn(ctx))
}

// mutate runs a mutating fn that carries requestID, retrying with the
// same request ID while the controller is unavailable.
func (c *client) mutate(ctx context.Context, requestID string, fn func(ctx context.Context) error) error {
	backoff := c.a.env.backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = c.call(ctx, fn)
		var re *rpcError
		if errors.As(err, &re) {
			re.requestID = requestID
		}
		if status.Code(err) != codes.Unavailable || attempt == mutationAttempts {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

// wrap records where a failed call went, for the message.
func (c *client) wrap(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && !c.a.probed &&
		!strings.Contains(st.Message(), "dial tcp") &&
		tlsTrust(st.Message(), c.a.tls, c.a.controller, c.a.serverName) == "" {
		c.a.probed = true
		// Perhaps a refused client certificate that grpc-go saw only as
		// a broken connection: ask the controller once more, bare.
		if why := c.a.probeTLS(); tlsTrust(why, c.a.tls, c.a.controller, c.a.serverName) != "" {
			err = status.Error(codes.Unavailable, st.Message()+"; a bare TLS handshake says: "+why)
		}
	}
	return &rpcError{addr: c.a.controller, timeout: c.a.timeout.String(), files: c.a.tls, serverName: c.a.serverName, err: err}
}

// withClient dials, runs fn and closes the connection.
func (a *app) withClient(fn func(c *client) error) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	defer c.close()
	return fn(c)
}
