package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// eventFaultCreated is the controller's event type for a new fault
	// (controller/state; turbctl does not import controller packages).
	eventFaultCreated = "fault.created"
	// createdMargin widens the search for a fault's creation event
	// before the fault's created_at (see createdSequence).
	createdMargin = 5 * time.Second
)

// applyKind is one fault kind that `fault apply` can ask for. Adding a
// kind (memory, disk_fill, disk_io, network, partition) means adding one
// applyKind to applyKinds: its flags and the spec they build. The common
// part — target agent, duration, request ID, client-side validation,
// sending and printing — is shared.
type applyKind struct {
	name  string // subcommand name, e.g. "cpu"
	short string
	long  string
	// bind registers the kind's flags on cmd and returns the function that
	// sets the kind's part of the spec from them. build returns a
	// usageError naming the flag when a value is plainly wrong.
	bind func(cmd *cobra.Command) (build func(spec *turbulencev1.FaultSpec) error)
}

// applyKinds lists the kinds wired into the CLI.
var applyKinds = []applyKind{cpuKind, memoryKind, diskFillKind, diskIOKind, networkKind, partitionKind}

func (a *app) faultApplyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply KIND",
		Short: "Apply a fault to one agent, or to a slice of the fleet",
		Long: `Apply a fault to one agent (--agent), or to a bounded slice of the fleet
(--select and/or --agents, with --count or --percent, --seed, --min,
--dry-run: docs/groups.md). Each kind is a subcommand with its own flags.

By default (--wait) turbctl waits for the agent's verdict: the controller
pushes it to turbctl the moment it is recorded. turbctl then prints the new
fault's ID (the whole fault with -o json) and exits 0 if the agent applied
it, 5 if the agent refused it, and 8 if no verdict came within
--wait-timeout (the fault stays recorded, PENDING, and its ID is printed).
With --wait=false turbctl returns as soon as the fault is recorded, while
it is still PENDING. 'turbctl fault show ID' tells what the agent achieved.
Invalid values exit 3, an unknown KIND included.`,
		Args: unknownKind,
		// The kind's flags (--agent…) are unknown here; ignore them so
		// that an unknown KIND is reported as such, whatever follows it.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &usageError{err: fmt.Errorf("%s needs a fault kind: %s", cmd.CommandPath(), kindNames()), cmd: cmd.CommandPath()}
		},
	}
	for _, k := range applyKinds {
		cmd.AddCommand(a.applyKindCommand(k))
	}
	return cmd
}

// kindNames lists the kinds `fault apply` takes, for messages.
func kindNames() string {
	names := make([]string, len(applyKinds))
	for i, k := range applyKinds {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// unknownKind refuses `fault apply KIND` for a KIND that is none of the
// subcommands (cobra lands here with it as an argument): invalid input
// that names the kinds there are, not a bare "unknown command".
func unknownKind(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return &invalidError{err: fmt.Errorf("unknown fault kind %q: the kinds are %s", args[0], kindNames()), cmd: cmd.CommandPath()}
}

func (a *app) applyKindCommand(k applyKind) *cobra.Command {
	var (
		agentID     string
		requestID   string
		dur         time.Duration
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   k.name,
		Short: k.short,
		Long:  k.long,
		Args:  exactArgs(),
	}
	f := cmd.Flags()
	f.StringVar(&agentID, "agent", "", "ID of the target agent (required)")
	f.DurationVar(&dur, "duration", 0, fmt.Sprintf("how long the fault lives, %s..%s (default: the controller's default)", faultspec.MinDuration, faultspec.MaxDuration))
	f.StringVar(&requestID, "request-id", "", "idempotency key; a repeat with the same key returns the first fault (default: random)")
	f.BoolVar(&wait, "wait", true, "wait for the agent to apply or refuse the fault; --wait=false returns once it is recorded")
	f.DurationVar(&waitTimeout, "wait-timeout", 15*time.Second, "how long --wait waits for the agent's verdict")
	build := k.bind(cmd)
	group := bindGroupFlags(cmd) // fault_group.go

	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := group.check(cmd, agentID); err != nil {
			return err
		}
		if agentID == "" && !group.active(cmd) {
			return usagef("--agent is required (or --select / --agents for a group)")
		}
		spec := &turbulencev1.FaultSpec{}
		if cmd.Flags().Changed("duration") {
			if dur < faultspec.MinDuration || dur > faultspec.MaxDuration {
				return invalidf("--duration must be between %s and %s, got %s", faultspec.MinDuration, faultspec.MaxDuration, dur)
			}
			spec.Duration = durationpb.New(dur)
		}
		if wait && waitTimeout <= 0 {
			return invalidf("--wait-timeout must be positive, got %s", waitTimeout)
		}
		if err := build(spec); err != nil {
			return err
		}
		if err := checkSpec(spec); err != nil {
			return err
		}
		if requestID == "" {
			requestID = a.env.requestID()
		}
		if group.active(cmd) {
			return a.applyGroup(cmd, group.request(cmd, requestID, spec))
		}
		req := &turbulencev1.ApplyFaultRequest{RequestId: requestID, AgentId: agentID, Spec: spec}
		return a.withClient(func(c *client) error {
			var fault *turbulencev1.Fault
			err := c.mutate(cmd.Context(), req.GetRequestId(), func(ctx context.Context) (err error) {
				fault, err = c.api.ApplyFault(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			if wait {
				if fault, err = a.awaitVerdict(cmd.Context(), c, fault, waitTimeout); err != nil {
					return err
				}
			}
			if a.json() {
				err = writeJSON(a.stdout, fault)
			} else {
				_, err = fmt.Fprintln(a.stdout, cell(fault.GetId()))
			}
			if err != nil {
				return err
			}
			if wait && !verdict(fault.GetState()) {
				// The ID is printed all the same: the fault is recorded.
				return &noVerdictError{id: fault.GetId(), agent: fault.GetAgentId(), state: stateName(fault.GetState()), timeout: waitTimeout}
			}
			if fault.GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED {
				// The ID is printed all the same, for `turbctl fault show`.
				return &faultFailedError{id: fault.GetId(), agent: fault.GetAgentId(), reason: fault.GetReason()}
			}
			return nil
		})
	})
	return cmd
}

// checkSpec runs the shared validation (internal/faultspec) as a last
// client-side net, after the per-flag checks. A spec without a duration
// is checked as if the controller's default filled it in. Problems are
// usage errors; the controller checks again and is the authority.
func checkSpec(spec *turbulencev1.FaultSpec) error {
	s := spec
	if s.GetDuration() == nil {
		s = proto.Clone(spec).(*turbulencev1.FaultSpec)
		s.Duration = durationpb.New(faultspec.MinDuration)
	}
	err := faultspec.Validate(s)
	var ferr *faultspec.Error
	if errors.As(err, &ferr) {
		parts := make([]string, len(ferr.Problems))
		for i, p := range ferr.Problems {
			parts[i] = p.Error()
		}
		return invalidf("invalid fault: %s", strings.Join(parts, "; "))
	}
	if err != nil {
		return invalidf("invalid fault: %v", err)
	}
	return nil
}

// verdict reports whether a fault in this state has the agent's verdict:
// applied (or already being taken back, or ended) or refused. PENDING has
// none yet, and UNCONFIRMED means the agent went away before giving one.
func verdict(s turbulencev1.FaultState) bool {
	switch s {
	case turbulencev1.FaultState_FAULT_STATE_PENDING, turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
		turbulencev1.FaultState_FAULT_STATE_UNSPECIFIED:
		return false
	}
	return true
}

// awaitVerdict waits until fault f's agent has applied it (or already
// taken it back) or refused it, so that a refusal by the agent's policy
// reaches the person who asked as an error, not as a PENDING fault that
// fails later. After timeout it returns the fault as it is, and the
// caller exits ExitNoVerdict: the fault stays recorded and the agent
// applies it when it connects.
//
// The verdict is pushed, not polled: turbctl follows the controller's
// event log (WatchEvents) from the fault's own "fault.created" event, so
// it hears of the verdict the moment the controller commits it, and
// reads the fault once more then. A poll every 100 ms used to add a
// median 50 ms to every apply (issue 17). Following from the creation
// event, not from "now", is what makes this race-free: the stream first
// replays every event after it, the verdict included if it came before
// the stream was open.
func (a *app) awaitVerdict(ctx context.Context, c *client, f *turbulencev1.Fault, timeout time.Duration) (*turbulencev1.Fault, error) {
	if f.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING {
		return f, nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seq, err := a.createdSequence(wctx, c, f)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wctx.Err() != nil:
		return f, nil
	case err != nil:
		return nil, err
	case seq == 0:
		// The controller asked does not show the creation event (a
		// controller whose event log dropped it): read until the
		// verdict instead.
		return a.pollVerdict(ctx, wctx, c, f)
	}
	got, err := a.watchVerdict(wctx, c, f, seq)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wctx.Err() != nil, errors.Is(err, context.DeadlineExceeded):
		// Out of time, and no event moved it: still PENDING.
		return f, nil
	case err != nil:
		return nil, err
	}
	return got, nil
}

// createdSequence returns the sequence number of fault f's
// "fault.created" event, or 0 if the controller does not list it. The
// controller asked may be a follower that has not yet applied the
// fault's creation (the apply was forwarded to the leader); a second,
// consistent read then goes through the leader.
func (a *app) createdSequence(ctx context.Context, c *client, f *turbulencev1.Fault) (uint64, error) {
	req := &turbulencev1.ListEventsRequest{AgentId: f.GetAgentId(), Type: eventFaultCreated, PageSize: limits.MaxPageEvents}
	if t := f.GetCreatedAt(); t != nil {
		// The event bears the time of the raft entry, the fault the
		// time the leader took the request: a moment apart on one
		// clock. The margin only bounds the listing.
		req.Since = timestamppb.New(t.AsTime().Add(-createdMargin))
	}
	for _, consistent := range []bool{false, true} {
		for token := ""; ; {
			req.PageToken = token
			var resp *turbulencev1.ListEventsResponse
			err := c.callRead(ctx, consistent, func(ctx context.Context) (err error) {
				resp, err = c.api.ListEvents(ctx, req)
				return err
			})
			if err != nil {
				return 0, err
			}
			for _, ev := range resp.GetEvents() {
				if ev.GetFaultId() == f.GetId() {
					return ev.GetSequence(), nil
				}
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
	}
	return 0, nil
}

// watchVerdict follows the event log after sequence seq until an event
// about fault f shows it out of PENDING, and returns the fault then. It
// returns when ctx ends, with ctx's error.
func (a *app) watchVerdict(ctx context.Context, c *client, f *turbulencev1.Fault, seq uint64) (*turbulencev1.Fault, error) {
	stream, err := c.api.WatchEvents(ctx, &turbulencev1.WatchEventsRequest{AfterSequence: seq})
	if err != nil {
		return nil, c.wrap(err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
				// The deadline also travels to the controller, which
				// may end the stream before the local timer fires.
				return nil, context.DeadlineExceeded
			}
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "the controller ended the event stream")
			}
			return nil, c.wrap(err)
		}
		if ev.GetFaultId() != f.GetId() || ev.GetType() == eventFaultCreated {
			continue
		}
		// The event says the fault moved; the fault itself says where
		// to (and carries the agent's reason), read from the same
		// controller, which has applied the entry the event came from.
		got, err := a.readFault(ctx, c, f)
		if err != nil {
			return nil, err
		}
		if got.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING {
			return got, nil
		}
	}
}

// readFault reads fault f again.
func (a *app) readFault(ctx context.Context, c *client, f *turbulencev1.Fault) (*turbulencev1.Fault, error) {
	var got *turbulencev1.Fault
	err := c.call(ctx, func(ctx context.Context) (err error) {
		got, err = c.api.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: f.GetId()})
		return err
	})
	return got, err
}

// pollVerdict reads fault f every env.poll until it leaves PENDING or
// wctx ends; the fallback when the event log cannot be followed.
func (a *app) pollVerdict(ctx, wctx context.Context, c *client, f *turbulencev1.Fault) (*turbulencev1.Fault, error) {
	tick := time.NewTicker(cmp.Or(a.env.poll, time.Millisecond))
	defer tick.Stop()
	for f.GetState() == turbulencev1.FaultState_FAULT_STATE_PENDING {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return f, nil
		case <-tick.C:
		}
		var err error
		if f, err = a.readFault(ctx, c, f); err != nil {
			return nil, err
		}
	}
	return f, nil
}
