package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/termsafe"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Exit codes of turbctl; the package documentation explains each.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitInvalid     = 3
	ExitNotFound    = 4
	ExitRefused     = 5
	ExitUnavailable = 6
	// ExitRateLimited is its own code, not ExitRefused: a refusal (5) is
	// final until someone changes a role or the halt flag, while a rate
	// limit says "nothing was applied, the same command will pass after
	// a pause" — a script retries the one and must not retry the other.
	ExitRateLimited = 7
	// ExitNoVerdict is `fault apply --wait` that ran out of --wait-timeout
	// before the agent applied or refused the fault. Its own code: the
	// fault is recorded (its ID is printed) and may still be applied when
	// the agent connects, so a script must neither treat it as success
	// nor retry the apply blindly.
	ExitNoVerdict = 8
	// ExitTLS is a TLS trust failure: the controller's certificate is not
	// signed by the CA given, is not valid for the address dialled, or
	// the controller refused turbctl's certificate. Its own code, not
	// ExitUnavailable: the controller is up and answering, and no retry
	// or network check will help until a certificate file is changed.
	ExitTLS = 9
	// ExitExperimentFailed is `experiment run --follow` whose experiment
	// ended otherwise than COMPLETED with the verdict PASSED (refused,
	// aborted, or the steady state did not come back).
	ExitExperimentFailed = 10
)

// exitCodesHelp is the exit-code table shown by `turbctl --help`.
const exitCodesHelp = `Exit codes:
  0  success
  1  internal or unknown error
  2  usage error (unknown command or flag, missing or extra argument or
     flag, flags that exclude each other; missing --ca/--cert/--key)
  3  invalid input: a value out of range or malformed (including an
     unknown fault kind), found by turbctl or by the controller
  4  not found (agent or fault)
  5  refused: permission denied or failed precondition (halted, policy)
  6  controller unavailable, or no answer within --timeout
  7  rate limited: nothing was applied; repeat after the pause shown
  8  fault apply --wait: no verdict from the agent within --wait-timeout;
     the fault is recorded and its ID printed
  9  TLS trust failure: the controller's certificate is not signed by
     --ca or not valid for the address, or the controller refused
     --cert; the message names the file
 10  experiment run --follow: the experiment did not complete with the
     verdict PASSED (refused, aborted, or not recovered in time)`

// usageError is a mistake in the command line. It exits with ExitUsage.
// cmd is the command path, for the hint that points at its help.
type usageError struct {
	err error
	cmd string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// invalidError is input that turbctl itself can tell is invalid: a flag
// or argument value out of range, malformed or inconsistent with another.
// It exits with ExitInvalid, as the controller's refusal of invalid input
// does, so that a script sees one code for "the input is wrong" wherever
// it was caught.
type invalidError struct {
	err error
	cmd string
}

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

func invalidf(format string, args ...any) error {
	return &invalidError{err: fmt.Errorf(format, args...)}
}

// noVerdictError is `fault apply --wait` that timed out while the fault
// was not yet applied or refused. It exits with ExitNoVerdict.
type noVerdictError struct {
	id, agent string
	state     string
	timeout   time.Duration
}

func (e *noVerdictError) Error() string {
	return fmt.Sprintf("no verdict on fault %s within %s (--wait-timeout): it is %s; is agent %s connected? (turbctl agents ls)", e.id, e.timeout, e.state, e.agent)
}

// runError marks an error returned by a command's own work (as opposed to
// cobra's parsing), so that Main can tell the two apart: anything cobra
// returns that is not a runError is a usage error.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// faultFailedError is a fault the controller recorded but its agent did
// not apply: its policy, a local halt or the host refused it. It exits
// with ExitRefused.
type faultFailedError struct {
	id, agent, reason string
}

func (e *faultFailedError) Error() string {
	return fmt.Sprintf("agent %s did not apply fault %s: %s", e.agent, e.id, e.reason)
}

// rpcError is a failed call to the controller, with what was asked of
// whom, for the message.
type rpcError struct {
	addr    string
	timeout string
	// requestID is the idempotency key of a mutating call, for the hint
	// on how to retry it safely when its outcome is unknown.
	requestID string
	// files and serverName are turbctl's TLS settings, to name the file
	// at fault in a TLS trust failure.
	files      tlsutil.Files
	serverName string
	err        error
}

func (e *rpcError) Error() string { return e.err.Error() }
func (e *rpcError) Unwrap() error { return e.err }

// report prints err to w as "turbctl: …" lines and returns the exit code.
func report(w io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	// Errors quote text from the controller (a halt reason, an agent's
	// refusal): escaped like every table cell (internal/termsafe).
	w = termsafe.Writer(w)
	var ie *invalidError
	if errors.As(err, &ie) {
		fmt.Fprintf(w, "turbctl: invalid input: %v\n", ie.err)
		if ie.cmd != "" {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", ie.cmd)
		}
		return ExitInvalid
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "turbctl: %v\n", ue.err)
		if ue.cmd != "" {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", ue.cmd)
		}
		return ExitUsage
	}
	var re *runError
	if !errors.As(err, &re) {
		// cobra's own errors: unknown command or flag, bad flag value,
		// wrong number of arguments.
		fmt.Fprintf(w, "turbctl: %v\nRun 'turbctl --help' for usage.\n", err)
		return ExitUsage
	}
	var nv *noVerdictError
	if errors.As(err, &nv) {
		fmt.Fprintf(w, "turbctl: %v\n", nv)
		return ExitNoVerdict
	}
	var xf *experimentFailedError
	if errors.As(err, &xf) {
		fmt.Fprintf(w, "turbctl: %v\n", xf)
		return ExitExperimentFailed
	}
	var nl *noLeaderError
	if errors.As(err, &nl) {
		fmt.Fprintf(w, "turbctl: %v\n", nl)
		return ExitUnavailable
	}
	var fe *faultFailedError
	if errors.As(err, &fe) {
		fmt.Fprintf(w, "turbctl: refused: %v\n", fe)
		return ExitRefused
	}
	var ce *rpcError
	if !errors.As(err, &ce) {
		fmt.Fprintf(w, "turbctl: %v\n", err)
		return ExitError
	}
	return reportRPC(w, ce)
}

// reportRPC prints a failed controller call and maps its gRPC code to an
// exit code.
func reportRPC(w io.Writer, ce *rpcError) int {
	if errors.Is(ce.err, context.Canceled) {
		fmt.Fprintln(w, "turbctl: interrupted")
		return ExitError
	}
	st, ok := status.FromError(ce.err)
	if !ok {
		fmt.Fprintf(w, "turbctl: %v\n", ce.err)
		return ExitError
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		lines := violations(st)
		if len(lines) == 0 {
			fmt.Fprintf(w, "turbctl: invalid request: %s\n", msg)
			return ExitInvalid
		}
		fmt.Fprintln(w, "turbctl: invalid request:")
		for _, l := range lines {
			fmt.Fprintf(w, "turbctl:   %s\n", l)
		}
		return ExitInvalid
	case codes.NotFound:
		fmt.Fprintf(w, "turbctl: not found: %s\n", msg)
		return ExitNotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		fmt.Fprintf(w, "turbctl: permission denied: %s\n", msg)
		return ExitRefused
	case codes.FailedPrecondition:
		fmt.Fprintf(w, "turbctl: refused: %s\n", msg)
		for _, l := range violations(st) {
			fmt.Fprintf(w, "turbctl:   %s\n", l)
		}
		return ExitRefused
	case codes.ResourceExhausted:
		return reportExhausted(w, ce, st)
	case codes.Unavailable:
		if why := tlsTrust(msg, ce.files, ce.addr, ce.serverName); why != "" {
			fmt.Fprintf(w, "turbctl: TLS trust failure: %s\n", why)
			return ExitTLS
		}
		fmt.Fprintf(w, "turbctl: controller %s unavailable: %s\n", ce.addr, msg)
		retryHint(w, ce)
		return ExitUnavailable
	case codes.DeadlineExceeded:
		fmt.Fprintf(w, "turbctl: controller %s did not answer within %s (--timeout)\n", ce.addr, ce.timeout)
		retryHint(w, ce)
		return ExitUnavailable
	default:
		fmt.Fprintf(w, "turbctl: %s: %s\n", strings.ToLower(codeName(st.Code())), msg)
		return ExitError
	}
}

// reportExhausted tells a rate-limit refusal, which the controller marks
// with a QuotaFailure detail naming the limit (controlapi.RateLimiter),
// from gRPC's own ResourceExhausted for a message over the size limit.
// The limiter refuses before anything is proposed, so the first is safe
// to repeat as it is; the second will fail the same way again.
func reportExhausted(w io.Writer, ce *rpcError, st *status.Status) int {
	var quota *errdetails.QuotaFailure
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.QuotaFailure:
			quota = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if quota == nil {
		fmt.Fprintf(w, "turbctl: over a size limit: %s\n", st.Message())
		return ExitInvalid
	}
	fmt.Fprintf(w, "turbctl: rate limited by controller %s: nothing was applied\n", ce.addr)
	for _, v := range quota.GetViolations() {
		fmt.Fprintf(w, "turbctl:   %s: %s\n", v.GetSubject(), v.GetDescription())
	}
	after := "a moment"
	if d := retry.GetRetryDelay(); d != nil && d.AsDuration() > 0 {
		after = d.AsDuration().String()
	}
	fmt.Fprintf(w, "turbctl: repeat the command after %s; turbctl halt is never rate limited\n", after)
	return ExitRateLimited
}

// retryHint tells how to retry a mutating call whose outcome is unknown
// without doing it twice.
func retryHint(w io.Writer, ce *rpcError) {
	if ce.requestID != "" {
		fmt.Fprintf(w, "turbctl: the request may or may not have been applied; repeat it with --request-id %s to be sure it is applied once\n", ce.requestID)
	}
}

// violations lists the field violations of a BadRequest detail and the
// violations of a PreconditionFailure detail as "field: description".
func violations(st *status.Status) []string {
	var out []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				subject := v.GetSubject()
				if subject == "" {
					subject = v.GetType()
				}
				out = append(out, subject+": "+v.GetDescription())
			}
		}
	}
	return out
}

// codeName spells a gRPC code with spaces ("failed precondition").
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
