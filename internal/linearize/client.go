package linearize

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Retryable reports whether an error leaves the outcome open, so that
// the client should try again with the same request ID: the node is down,
// is not the leader and could not forward within its hold time, refused
// for its rate limit, or the call timed out. Any other error is an answer.
func Retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// Node is one controller as a client of the history reaches it.
type Node struct {
	Name string
	API  turbulencev1.ControlServiceClient
}

// Client is one client of a history: it runs each operation to a
// definite answer and records it. A Client is used by one goroutine.
type Client struct {
	// ID is the client's ID in the history (porcupine's ClientId).
	ID int
	// Nodes are the controllers an attempt may go to, picked at random.
	Nodes []Node
	// Rand picks the node of each attempt.
	Rand *rand.Rand
	// Attempt bounds one attempt (a DeadlineExceeded is retried).
	Attempt time.Duration
	// RetryPause, when set, is waited between attempts, so that a client
	// does not spin on a node that refuses at once (a killed process).
	RetryPause time.Duration
	// Consistent marks a read's context as a consistent read
	// (controller/forward.MDConsistent).
	Consistent func(context.Context) context.Context
	// ApplyRequest builds the ApplyFault request for a request ID.
	ApplyRequest func(req string) *turbulencev1.ApplyFaultRequest
	// ApplyGroupRequest builds the ApplyFaultGroup request for a request
	// ID; needed only by a client that runs OpApplyGroup.
	ApplyGroupRequest func(req string) *turbulencev1.ApplyFaultGroupRequest
	// History, when set, records every operation that got an answer.
	History *History
	// Retried, when set, is told of every attempt whose error left the
	// outcome open (Retryable) before the operation is tried again: a
	// test counts, say, the writes a full disk refused.
	Retried func(node string, err error)
	// Hidden, when set, names the faults the model cannot know, which
	// lists leave out: faults the controller makes by itself, not on a
	// call of the history, such as the members of an experiment's steps
	// (see ExperimentFault).
	Hidden func(*turbulencev1.Fault) bool
}

// ExperimentFault reports whether f was made by an experiment's runner
// (its creator is the experiment's identity, role "experiment"), not by
// a call of a client.
func ExperimentFault(f *turbulencev1.Fault) bool {
	return strings.HasPrefix(f.GetCreatedBy(), "experiment/")
}

// Do runs one logical operation to a definite answer, retrying at random
// nodes (never twice in a row the same) with the same request ID, records it and returns its output. The
// operation's interval in the history is from before the first attempt to
// after the last, which is exactly what idempotent retries promise. It
// fails when ctx ends first or an attempt gets an error that is an answer
// the model has no place for.
func (c *Client) Do(ctx context.Context, in Input) (Output, error) {
	call := time.Now()
	var via []string
	for {
		if err := ctx.Err(); err != nil {
			return Output{}, fmt.Errorf("%s: no answer before the deadline (tried %s): %w", describeInput(in), strings.Join(via, ","), err)
		}
		if len(via) > 0 && c.RetryPause > 0 {
			t := time.NewTimer(c.RetryPause)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		node := c.pick(via)
		via = append(via, node.Name)
		out, err := c.attempt(ctx, node.API, in)
		switch {
		case err == nil:
			if c.History != nil {
				ret, meta := time.Now(), "via "+strings.Join(via, ",")
				if in.Op == OpList && out.Pages > 1 {
					// Not one atomic read: two facts, each atomic
					// (model.go, OpListComplete).
					c.History.Record(c.ID, Input{Op: OpListComplete}, out, call, ret, meta)
					c.History.Record(c.ID, Input{Op: OpListExisting}, out, call, ret, meta)
				} else {
					c.History.Record(c.ID, in, out, call, ret, meta)
				}
			}
			return out, nil
		case !Retryable(err):
			return Output{}, fmt.Errorf("%s via %s: %w", describeInput(in), node.Name, err)
		case c.Retried != nil:
			c.Retried(node.Name, err)
		}
	}
}

// pick chooses the node of the next attempt at random, but not the node
// that just failed (as a client with several addresses does), so that a
// partitioned or dead node does not take turn after turn.
func (c *Client) pick(via []string) Node {
	if len(via) == 0 || len(c.Nodes) < 2 {
		return c.Nodes[c.Rand.IntN(len(c.Nodes))]
	}
	for {
		if n := c.Nodes[c.Rand.IntN(len(c.Nodes))]; n.Name != via[len(via)-1] {
			return n
		}
	}
}

// attempt makes one call to one node.
func (c *Client) attempt(ctx context.Context, api turbulencev1.ControlServiceClient, in Input) (Output, error) {
	actx, cancel := context.WithTimeout(ctx, c.Attempt)
	defer cancel()
	consistent := c.Consistent
	if consistent == nil {
		return Output{}, errors.New("linearize: Client.Consistent is not set: plain reads are not linearizable")
	}
	var out Output
	var err error
	switch in.Op {
	case OpApply:
		var f *turbulencev1.Fault
		f, err = api.ApplyFault(actx, c.ApplyRequest(in.Req))
		out.FaultID = f.GetId()
		if status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "halted") {
			out, err = Output{Refused: true}, nil
		}
	case OpApplyGroup:
		if c.ApplyGroupRequest == nil {
			return Output{}, errors.New("linearize: Client.ApplyGroupRequest is not set")
		}
		var g *turbulencev1.FaultGroup
		g, err = api.ApplyFaultGroup(actx, c.ApplyGroupRequest(in.Req))
		out.FaultIDs, out.Group = MemberFaults(g), g
		if status.Code(err) == codes.FailedPrecondition {
			switch msg := status.Convert(err).Message(); {
			case strings.Contains(msg, "halted"):
				out, err = Output{Refused: true}, nil
			case strings.HasPrefix(msg, "min: "):
				// controlapi's ErrGroupTooSmall, which names the field.
				out, err = Output{TooSmall: true}, nil
			}
		}
	case OpHalt:
		var h *turbulencev1.HaltStatus
		h, err = api.Halt(actx, &turbulencev1.HaltRequest{RequestId: in.Req, Reason: "linearizability"})
		out.Halted = h.GetHalted()
	case OpResume:
		var h *turbulencev1.HaltStatus
		h, err = api.Resume(actx, &turbulencev1.ResumeRequest{RequestId: in.Req})
		out.Halted = h.GetHalted()
	case OpReadHalt:
		var h *turbulencev1.HaltStatus
		h, err = api.GetHaltStatus(consistent(actx), &turbulencev1.GetHaltStatusRequest{})
		out.Halted = h.GetHalted()
	case OpList:
		out.IDs, out.Pages, err = traverse(actx, api, consistent, c.Hidden)
	case OpGet:
		var f *turbulencev1.Fault
		f, err = api.GetFault(consistent(actx), &turbulencev1.GetFaultRequest{Id: in.FaultID})
		switch {
		case err == nil:
			out.Found = f.GetId() == in.FaultID
		case status.Code(err) == codes.NotFound:
			out, err = Output{Found: false}, nil
		}
	default:
		return Output{}, fmt.Errorf("linearize: unknown operation %q", in.Op)
	}
	return out, err
}

// MemberFaults returns the fault IDs of a group's chosen members, sorted.
func MemberFaults(g *turbulencev1.FaultGroup) []string {
	var ids []string
	for _, m := range g.GetMembers() {
		if m.GetRefusal() == "" && m.GetFaultId() != "" {
			ids = append(ids, m.GetFaultId())
		}
	}
	slices.Sort(ids)
	return ids
}

func describeInput(in Input) string {
	switch in.Op {
	case OpGet:
		return fmt.Sprintf("get(%s)", in.FaultID)
	case OpList, OpReadHalt:
		return string(in.Op) + "()"
	}
	return fmt.Sprintf("%s(%s)", in.Op, in.Req)
}

// traverse follows the pages of ListFaults once (docs/limits.md) and
// returns the IDs, sorted, and how many pages it read. Each page is a
// consistent read; see OpListComplete for what a traversal of several
// pages proves.
func traverse(ctx context.Context, api turbulencev1.ControlServiceClient, consistent func(context.Context) context.Context, hidden func(*turbulencev1.Fault) bool) ([]string, int, error) {
	var ids []string
	for pages, token := 1, ""; ; pages++ {
		l, err := api.ListFaults(consistent(ctx), &turbulencev1.ListFaultsRequest{PageToken: token, PageSize: limits.MaxPageFaults})
		if err != nil {
			return nil, pages, err
		}
		for _, f := range l.GetFaults() {
			if hidden == nil || !hidden(f) {
				ids = append(ids, f.GetId())
			}
		}
		if token = l.GetNextPageToken(); token == "" {
			slices.Sort(ids)
			return ids, pages, nil
		}
	}
}
