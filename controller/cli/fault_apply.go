package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
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
		Short: "Apply a fault to one agent",
		Long: `Apply a fault to one agent. Each kind is a subcommand with its own flags.

On success turbctl prints the new fault's ID (the whole fault with -o json).
The fault starts PENDING; see 'turbctl fault show ID' for what the agent
achieved.`,
		Args: noSubcommand,
		RunE: missingSubcommand,
	}
	for _, k := range applyKinds {
		cmd.AddCommand(a.applyKindCommand(k))
	}
	return cmd
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

	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if agentID == "" {
			return usagef("--agent is required")
		}
		spec := &turbulencev1.FaultSpec{}
		if cmd.Flags().Changed("duration") {
			if dur < faultspec.MinDuration || dur > faultspec.MaxDuration {
				return usagef("--duration must be between %s and %s, got %s", faultspec.MinDuration, faultspec.MaxDuration, dur)
			}
			spec.Duration = durationpb.New(dur)
		}
		if wait && waitTimeout <= 0 {
			return usagef("--wait-timeout must be positive, got %s", waitTimeout)
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
		return usagef("invalid fault: %s", strings.Join(parts, "; "))
	}
	if err != nil {
		return usagef("invalid fault: %v", err)
	}
	return nil
}

// awaitVerdict reads fault f until its agent has applied it (or already
// taken it back) or refused it, so that a refusal by the agent's policy
// reaches the person who asked as an error, not as a PENDING fault that
// fails later. After timeout it warns and returns the fault as it is: it
// stays recorded and the agent applies it when it connects.
func (a *app) awaitVerdict(ctx context.Context, c *client, f *turbulencev1.Fault, timeout time.Duration) (*turbulencev1.Fault, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := cmp.Or(a.env.poll, time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for f.GetState() == turbulencev1.FaultState_FAULT_STATE_PENDING {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			fmt.Fprintf(a.stderr, "turbctl: fault %s is still pending after %s: is agent %s connected? (turbctl agents ls)\n", cell(f.GetId()), timeout, cell(f.GetAgentId()))
			return f, nil
		case <-tick.C:
		}
		id := f.GetId()
		err := c.call(ctx, func(ctx context.Context) (err error) {
			f, err = c.api.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: id})
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}
