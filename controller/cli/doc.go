// Package cli implements turbctl, the command-line client of the
// controller's ControlService.
//
// turbctl talks to a controller only through the public gRPC API in
// proto/turbulence/v1, like any other API user: it imports proto/ and
// internal/ and no other controller package (the rule is enforced by
// test/deps_test.go). Every connection is mutual TLS; there is no
// plaintext option. The controller is the authority on what is valid —
// turbctl checks the obvious flag mistakes first only so that a typo is
// reported as a usage error naming the flag, before anything is sent.
// The exception is `turbctl tls`, which makes the fleet CA and
// certificates offline (internal/tlsutil) and never dials a controller.
//
// Output is a human table by default (text/tabwriter, durations and times
// relative to now, e.g. "in 8s", "12s ago") and protojson with -o json:
// exactly one JSON document per command (an object, or {"agents":[…]}
// style lists), except `events --follow`, which prints one JSON object per
// line. JSON uses the canonical proto3 mapping (lowerCamelCase names,
// RFC 3339 times, durations as "30s").
//
// Reads are served by the controller asked, from its replicated state,
// which may lag the leader by a moment. Every read command (agents
// ls/show, fault ls/show, audit ls, cluster ls, status, events without
// --follow) takes --consistent, which sends the request metadata
// turbulence-consistent-read: true; the controller then routes the read
// to the leader, which answers after a raft barrier, so it sees every
// write acknowledged before it (controller/forward).
//
// Mutating calls (fault apply, fault revert, halt, resume) carry a request
// ID generated on the client. The same ID is reused when turbctl retries a
// call that failed with Unavailable, so a retry after a lost answer does
// not create a second fault; --request-id lets a script choose the ID and
// retry on its own.
//
// # Exit codes
//
// Scripts can rely on these:
//
//	0  success
//	1  internal or unknown error (including unreadable TLS files)
//	2  usage error: the command line is malformed — unknown command or
//	   flag, missing or extra arguments, a required flag missing, flags
//	   that exclude each other, missing --ca/--cert/--key
//	3  invalid input: a value out of range, malformed or inconsistent
//	   (e.g. --load 150, --cores two, an unknown fault kind), whether
//	   turbctl caught it before sending anything or the controller
//	   refused it (InvalidArgument; each field violation on its own line)
//	4  not found (NotFound): no such agent or fault
//	5  refused: permission denied, unauthenticated, or a failed
//	   precondition (the fleet is halted, a policy forbids it)
//	6  controller unavailable or no answer within --timeout
//	   (Unavailable, DeadlineExceeded)
//	7  rate limited (ResourceExhausted with a QuotaFailure detail): the
//	   caller made more mutating calls than its per-identity limit on
//	   that controller node allows; nothing was applied, and the same
//	   command passes after the pause printed. Halt is never limited. A
//	   ResourceExhausted without that detail (a message over the gRPC
//	   size limit) exits 3, as invalid input.
//	8  fault apply --wait ran out of --wait-timeout without the agent's
//	   verdict (applied or refused): the fault is recorded and its ID is
//	   printed, and it may still be applied when the agent connects;
//	   check it with `turbctl fault show ID`, or revert it
//	9  TLS trust failure: the controller's certificate is not signed by
//	   the CA in --ca, is not valid for the address dialled (or
//	   --tls-server-name), has expired, or belongs to another role; or
//	   the controller refused turbctl's --cert. The message names the
//	   file and what did not match. Not 6: the controller is there, and
//	   only a changed certificate file helps
//	10 experiment run --follow: the experiment ended otherwise than
//	   COMPLETED with the verdict PASSED (refused, aborted, or the steady
//	   state did not come back within its recovery time)
//
// Errors are printed to stderr as "turbctl: <message>".
package cli
