package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/turbulence-sre/turbulence/internal/termsafe"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) haltCommand() *cobra.Command {
	var reason, requestID string
	cmd := &cobra.Command{
		Use:   "halt",
		Short: "Kill switch: revert every fault in the fleet and refuse new ones",
		Long: `Halt the whole fleet (invariant 5): every pending and active fault is
reverted and new faults are refused until 'turbctl resume'. The flag lives
in raft, so a new controller leader honours it.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			req := &turbulencev1.HaltRequest{RequestId: requestID, Reason: reason}
			return a.withClient(func(c *client) error {
				start := a.env.now()
				var hs *turbulencev1.HaltStatus
				err := c.mutate(cmd.Context(), requestID, func(ctx context.Context) (err error) {
					hs, err = c.api.Halt(ctx, req)
					return err
				})
				if err != nil {
					return err
				}
				if err := a.printHalt(hs); err != nil {
					return err
				}
				if a.alreadyHalted(hs, reason, start) {
					return alreadyHaltedNote(a.stderr, a.env.now(), hs, reason)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the fleet is halted (recorded and shown by status)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	return cmd
}

func (a *app) resumeCommand() *cobra.Command {
	var requestID string
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Lift a fleet halt so that faults may be applied again",
		Args:  exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if requestID == "" {
				requestID = a.env.requestID()
			}
			req := &turbulencev1.ResumeRequest{RequestId: requestID}
			return a.mutateHalt(cmd.Context(), requestID, func(ctx context.Context, c *client) (*turbulencev1.HaltStatus, error) {
				return c.api.Resume(ctx, req)
			})
		}),
	}
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	return a.consistentFlag(&cobra.Command{
		Use:   "status",
		Short: "Show whether the fleet is halted, and the controller's certificate expiry",
		Long: `Show whether the fleet is halted. In table output, a last line names the
controller that answered and when its certificate expires, with a warning
within 14 days of it (-o json prints the halt status alone). When the
controller asked knows no raft leader, status says so and exits 6: its
halt state may be stale, and neither halt nor resume can be written.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.withClient(func(c *client) error {
				// A controller without a leader still answers reads from
				// its own replica; "running" from it would hide that no
				// halt can be written (issue 13, item 8).
				if err := c.requireLeader(cmd.Context()); err != nil {
					return err
				}
				var hs *turbulencev1.HaltStatus
				var p peer.Peer
				err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					hs, err = c.api.GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{}, grpc.Peer(&p))
					return err
				})
				if err != nil {
					return err
				}
				if err := a.printHalt(hs); err != nil || a.json() {
					return err
				}
				return controllerCertLine(a.stdout, a.env.now(), a.controller, serverCertificate(&p))
			})
		}),
	})
}

func (a *app) mutateHalt(ctx context.Context, requestID string, fn func(context.Context, *client) (*turbulencev1.HaltStatus, error)) error {
	return a.withClient(func(c *client) error {
		var hs *turbulencev1.HaltStatus
		err := c.mutate(ctx, requestID, func(ctx context.Context) (err error) {
			hs, err = fn(ctx, c)
			return err
		})
		if err != nil {
			return err
		}
		return a.printHalt(hs)
	})
}

func (a *app) printHalt(hs *turbulencev1.HaltStatus) error {
	if a.json() {
		if !hs.GetHalted() {
			// protojson leaves a false bool out; scripts read .halted.
			_, err := fmt.Fprintln(a.stdout, `{
  "halted": false
}`)
			return err
		}
		return writeJSON(a.stdout, hs)
	}
	return haltDetail(a.stdout, a.env.now(), hs)
}

// alreadyHaltedMargin is how much older than the call a halt's "since"
// may be and still be this call's own: clocks of turbctl's host and the
// controller differ by that much at most on any host that keeps time.
const alreadyHaltedMargin = time.Minute

// alreadyHalted reports whether the halt that answered hs found the
// fleet halted already. A halt of a halted fleet changes nothing: the
// controller keeps the first halt's author, reason and time, and answers
// with them (controller/state). So the answer is someone else's halt when
// its author is not this caller, its reason is not the one asked, or it
// began well before this call. It is read from the answer alone: the kill
// switch makes no extra call before it acts. (The same person halting
// twice with the same reason within a minute is not told; nothing in
// that answer would mislead them.)
func (a *app) alreadyHalted(hs *turbulencev1.HaltStatus, asked string, start time.Time) bool {
	if !hs.GetHalted() {
		return false
	}
	if me, err := a.identity(); err == nil && hs.GetBy() != me {
		return true
	}
	return hs.GetReason() != asked || hs.GetSince().AsTime().Before(start.Add(-alreadyHaltedMargin))
}

// identity is the "role/name" in turbctl's own certificate, as the
// controller records it.
func (a *app) identity() (string, error) {
	cert, err := tlsutil.ReadCertFile(a.tls.Cert)
	if err != nil {
		return "", err
	}
	id, err := tlsutil.IdentityFromCert(cert)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// alreadyHaltedNote tells, on stderr (so that -o json stays one object),
// that a halt changed nothing: who halted the fleet, since when, the
// reason in force, and that the --reason given was not recorded.
func alreadyHaltedNote(w io.Writer, now time.Time, hs *turbulencev1.HaltStatus, asked string) error {
	w = termsafe.Writer(w)
	inForce := hs.GetReason()
	if inForce == "" {
		inForce = "none given"
	}
	fmt.Fprintf(w, "turbctl: the fleet was already halted by %s since %s (reason in force: %s); this halt changed nothing\n",
		orNone(hs.GetBy()), absolute(hs.GetSince(), now), inForce)
	if asked != "" && asked != hs.GetReason() {
		fmt.Fprintf(w, "turbctl: --reason %q was not recorded: the first halt's reason stays until 'turbctl resume'\n", asked)
	}
	return nil
}

func haltDetail(w io.Writer, now time.Time, hs *turbulencev1.HaltStatus) error {
	if !hs.GetHalted() {
		_, err := fmt.Fprintln(w, "fleet: running (not halted)")
		return err
	}
	tw := table(w)
	row(tw, "Fleet:", "HALTED")
	row(tw, "Since:", absolute(hs.GetSince(), now))
	row(tw, "By:", orNone(hs.GetBy()))
	row(tw, "Reason:", orNone(hs.GetReason()))
	return tw.Flush()
}

// noLeaderError is a controller that knows no raft leader. It exits with
// ExitUnavailable.
type noLeaderError struct{ addr, answeredBy string }

func (e *noLeaderError) Error() string {
	return fmt.Sprintf("controller %s (%s) knows no raft leader: the cluster has lost its quorum or is electing; its halt state may be stale and no halt or resume can be written (see 'turbctl cluster ls', and docs/security.md on recovering a lost quorum)", e.addr, e.answeredBy)
}

// requireLeader fails with a noLeaderError unless the controller names a
// raft leader in its configuration.
func (c *client) requireLeader(ctx context.Context) error {
	var resp *turbulencev1.ListServersResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = turbulencev1.NewClusterServiceClient(c.conn).ListServers(ctx, &turbulencev1.ListServersRequest{})
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range resp.GetServers() {
		if s.GetLeader() {
			return nil
		}
	}
	return &noLeaderError{addr: c.a.controller, answeredBy: resp.GetAnsweredBy()}
}
