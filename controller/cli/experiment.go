package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// experimentCommand is the `experiment` group (docs/experiments.md). Each
// subcommand lives in its own file, experiment_NAME.go, and is added
// here.
func (a *app) experimentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "experiment",
		Aliases: []string{"experiments"},
		Short:   "Validate, plan and run chaos experiments from YAML files",
		Args:    noSubcommand,
		RunE:    missingSubcommand,
	}
	cmd.AddCommand(a.experimentValidateCommand(), a.experimentPlanCommand(),
		a.experimentRunCommand(), a.experimentListCommand(), a.experimentShowCommand(),
		a.experimentAbortCommand(), a.experimentReportCommand())
	return cmd
}

// readExperiment reads an experiment file, parses it and validates it. A
// file that breaks a rule is an *experiment.Error (its problems, each
// with its field), returned with the spec it could parse (nil if none).
func readExperiment(path string) (*experiment.Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	defer func() { _ = f.Close() }()
	// One byte more than the limit, so that Parse sees it is too large.
	data, err := io.ReadAll(io.LimitReader(f, experiment.MaxFileBytes+1))
	if err != nil {
		return nil, invalidf("%s: %v", path, err)
	}
	s, err := experiment.Parse(data)
	if err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// problemsOf returns the problems of an *experiment.Error, or nil.
func problemsOf(err error) []experiment.FieldError {
	var e *experiment.Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}

// problemsError is the exit of a file with problems: invalid input (3),
// after the problems were printed.
func problemsError(path string, problems []experiment.FieldError) error {
	n := "1 problem"
	if len(problems) != 1 {
		n = fmt.Sprintf("%d problems", len(problems))
	}
	return invalidf("%s: %s", path, n)
}

// printProblems prints a FIELD / PROBLEM table.
func printProblems(w io.Writer, problems []experiment.FieldError) error {
	tw := table(w)
	row(tw, "FIELD", "PROBLEM")
	for _, p := range problems {
		row(tw, p.Field, p.Reason)
	}
	return tw.Flush()
}

// writeJSONValue prints a plain Go value as indented JSON, the way
// writeJSON prints a message.
func writeJSONValue(w io.Writer, v any) error {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err := w.Write(out.Bytes())
	return err
}

// cliFleet is experiment.Fleet over turbctl's connection: each call has
// the per-call deadline and turbctl's error wrapping. A plan sends one dry
// run per target and per step, more than the controller's burst of writes
// for a large file, so a rate-limited dry run waits the pause the
// controller names and is asked again (a dry run changes nothing, so
// asking twice is harmless).
type cliFleet struct{ c *client }

// maxRateLimitWaits bounds the waits of one dry run.
const maxRateLimitWaits = 10

func (f cliFleet) ListAgents(ctx context.Context, req *turbulencev1.ListAgentsRequest) (resp *turbulencev1.ListAgentsResponse, err error) {
	err = f.c.call(ctx, func(ctx context.Context) error {
		resp, err = f.c.api.ListAgents(ctx, req)
		return err
	})
	return resp, err
}

func (f cliFleet) DryRunGroup(ctx context.Context, req *turbulencev1.ApplyFaultGroupRequest) (g *turbulencev1.FaultGroup, err error) {
	req = proto.CloneOf(req)
	req.DryRun = true // whatever the caller built: a plan applies nothing
	for attempt := 0; ; attempt++ {
		err = f.c.call(ctx, func(ctx context.Context) error {
			g, err = f.c.api.ApplyFaultGroup(ctx, req)
			return err
		})
		pause, limited := rateLimitPause(err)
		if !limited || attempt == maxRateLimitWaits {
			return g, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// rateLimitPause reports whether err is the controller's rate limit and
// the pause it asks for (a second when it names none, at most 5s).
func rateLimitPause(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	pause, quota := time.Second, false
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.QuotaFailure:
			quota = true
		case *errdetails.RetryInfo:
			if r := d.GetRetryDelay().AsDuration(); r > 0 {
				pause = min(r, 5*time.Second)
			}
		}
	}
	return pause, quota
}
