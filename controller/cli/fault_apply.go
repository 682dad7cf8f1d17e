package cli

import (
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
var applyKinds = []applyKind{cpuKind, memoryKind}

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
		agentID   string
		requestID string
		dur       time.Duration
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
			if a.json() {
				return writeJSON(a.stdout, fault)
			}
			_, err = fmt.Fprintln(a.stdout, fault.GetId())
			return err
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
