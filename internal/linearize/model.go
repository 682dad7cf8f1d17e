package linearize

import (
	"fmt"
	"maps"
	"slices"

	"github.com/anishathalye/porcupine"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Op is the kind of one operation of a history.
type Op string

// The operations the model knows.
const (
	// OpApply is ApplyFault with a request ID.
	OpApply Op = "apply"
	// OpHalt and OpResume are Halt and Resume with a request ID.
	OpHalt   Op = "halt"
	OpResume Op = "resume"
	// OpReadHalt is a consistent GetHaltStatus.
	OpReadHalt Op = "read-halt"
	// OpList is a consistent ListFaults of every fault, read in one page:
	// the list is the state at one point.
	OpList Op = "list"
	// A list read in several pages (ListFaults is paged, docs/limits.md)
	// is not one atomic read: a traversal returns every fault that existed
	// when it started and only faults that existed when it ended. The
	// client records it as two operations over the same interval, each
	// atomic: OpListComplete (no fault of the state is missing from the
	// list; true at the start) and OpListExisting (every listed fault was
	// made; true at the end).
	OpListComplete Op = "list-complete"
	OpListExisting Op = "list-existing"
	// OpGet is a consistent GetFault of one fault ID.
	OpGet Op = "get"
	// OpApplyGroup is ApplyFaultGroup with a request ID: one raft entry
	// that makes a fault for every chosen agent, or nothing.
	OpApplyGroup Op = "apply-group"
)

// Input is what a client asked.
type Input struct {
	Op Op
	// Req is the request ID of apply, apply-group, halt and resume.
	Req string
	// FaultID is the fault a get reads.
	FaultID string
}

// Output is the definite answer a client got.
type Output struct {
	// FaultID is, for apply, the fault made (or found) for the request ID.
	FaultID string
	// Refused is, for apply and apply-group, a refusal because the fleet
	// is halted.
	Refused bool
	// FaultIDs is, for apply-group, the member faults made (or found) for
	// the request ID, sorted.
	FaultIDs []string
	// TooSmall is, for apply-group, a refusal because fewer agents were
	// eligible than the group's minimum. Eligibility is the leader's soft
	// state (which agents are connected), which the model does not know:
	// the refusal is allowed whenever the fleet is not halted and the
	// request ID made nothing yet.
	TooSmall bool
	// Group is, for apply-group, the answer itself (its ID, each member's
	// agent), for the caller; the model does not read it.
	Group *turbulencev1.FaultGroup
	// Halted is, for halt, resume and read-halt, the flag answered.
	Halted bool
	// IDs is, for list, every fault ID, sorted.
	IDs []string
	// Pages is, for list, how many pages the traversal read.
	Pages int
	// Found is, for get, whether the fault exists (false: NotFound).
	Found bool
}

// state is the model's state. It is immutable: Step copies what it
// changes.
type state struct {
	halted bool
	faults map[string]string   // request ID → fault ID
	groups map[string][]string // group request ID → its member faults, sorted
	seen   map[string]bool     // halt and resume request IDs applied
}

// Model is the fault registry as clients see it, as a sequential
// specification for porcupine.
var Model = porcupine.Model{
	Init: func() any {
		return state{faults: map[string]string{}, groups: map[string][]string{}, seen: map[string]bool{}}
	},
	Step: func(st, in, out any) (bool, any) {
		return step(st.(state), in.(Input), out.(Output))
	},
	Equal: func(a, b any) bool {
		x, y := a.(state), b.(state)
		return x.halted == y.halted && maps.Equal(x.faults, y.faults) && maps.Equal(x.seen, y.seen) &&
			maps.EqualFunc(x.groups, y.groups, slices.Equal[[]string])
	},
	Hash: func(st any) uint64 {
		s := st.(state)
		h := uint64(len(s.faults))<<32 | uint64(len(s.groups))<<20 | uint64(len(s.seen))<<1
		if s.halted {
			h |= 1
		}
		return h
	},
	DescribeOperation: func(in, out any) string { return describe(in.(Input), out.(Output)) },
	DescribeState: func(st any) string {
		s := st.(state)
		return fmt.Sprintf("%d faults, %d groups, halted=%v", len(s.faults), len(s.groups), s.halted)
	},
	DescribeOperationMetadata: func(md any) string {
		if md == nil {
			return ""
		}
		return fmt.Sprint(md)
	},
}

func step(s state, i Input, o Output) (bool, any) {
	switch i.Op {
	case OpApply:
		// A request ID applied before returns its fault: a retry never
		// makes a second one.
		if id, ok := s.faults[i.Req]; ok {
			return !o.Refused && o.FaultID == id, s
		}
		// Invariant 5: no new fault while halted.
		if s.halted {
			return o.Refused, s
		}
		if o.Refused || o.FaultID == "" || s.holds(o.FaultID) {
			return false, s
		}
		next := s
		next.faults = maps.Clone(s.faults)
		next.faults[i.Req] = o.FaultID
		return true, next
	case OpApplyGroup:
		// A retry returns the group the request ID made, whatever changed
		// since (halt included).
		if ids, ok := s.groups[i.Req]; ok {
			return !o.Refused && !o.TooSmall && slices.Equal(o.FaultIDs, ids), s
		}
		// Invariant 5: the halt is checked before the choice.
		if s.halted {
			return o.Refused, s
		}
		if o.Refused {
			return false, s
		}
		if o.TooSmall {
			return len(o.FaultIDs) == 0, s
		}
		if len(o.FaultIDs) == 0 {
			return false, s // an empty group is an error, never an answer
		}
		for _, id := range o.FaultIDs {
			if s.holds(id) {
				return false, s
			}
		}
		next := s
		next.groups = maps.Clone(s.groups)
		next.groups[i.Req] = o.FaultIDs
		return true, next
	case OpHalt, OpResume:
		// A halt or resume retried after it was applied answers the flag
		// as it is now (state.ApplySetHalt).
		if s.seen[i.Req] {
			return o.Halted == s.halted, s
		}
		want := i.Op == OpHalt
		if o.Halted != want {
			return false, s
		}
		next := s
		next.halted = want
		next.seen = maps.Clone(s.seen)
		next.seen[i.Req] = true
		return true, next
	case OpReadHalt:
		return o.Halted == s.halted, s
	case OpList:
		return slices.Equal(o.IDs, s.all()), s
	case OpListComplete:
		for _, id := range s.all() {
			if _, found := slices.BinarySearch(o.IDs, id); !found {
				return false, s
			}
		}
		return true, s
	case OpListExisting:
		for _, id := range o.IDs {
			if !s.holds(id) {
				return false, s
			}
		}
		return true, s
	case OpGet:
		return o.Found == s.holds(i.FaultID), s
	}
	return false, s
}

// holds reports whether a fault with this ID was made, alone or as a
// group's member.
func (s state) holds(faultID string) bool {
	for _, id := range s.faults {
		if id == faultID {
			return true
		}
	}
	for _, ids := range s.groups {
		if _, found := slices.BinarySearch(ids, faultID); found {
			return true
		}
	}
	return false
}

// all returns every fault made, alone or as a group's member, sorted.
func (s state) all() []string {
	out := slices.Collect(maps.Values(s.faults))
	for _, ids := range s.groups {
		out = append(out, ids...)
	}
	slices.Sort(out)
	return out
}

func describe(i Input, o Output) string {
	switch i.Op {
	case OpApply:
		if o.Refused {
			return fmt.Sprintf("apply(%s) -> refused: halted", i.Req)
		}
		return fmt.Sprintf("apply(%s) -> %s", i.Req, o.FaultID)
	case OpApplyGroup:
		switch {
		case o.Refused:
			return fmt.Sprintf("apply-group(%s) -> refused: halted", i.Req)
		case o.TooSmall:
			return fmt.Sprintf("apply-group(%s) -> refused: too few eligible agents", i.Req)
		}
		return fmt.Sprintf("apply-group(%s) -> %v", i.Req, o.FaultIDs)
	case OpList, OpListComplete, OpListExisting:
		return fmt.Sprintf("%s() -> %d faults", i.Op, len(o.IDs))
	case OpGet:
		if o.Found {
			return fmt.Sprintf("get(%s) -> found", i.FaultID)
		}
		return fmt.Sprintf("get(%s) -> not found", i.FaultID)
	}
	return fmt.Sprintf("%s(%s) -> halted=%v", i.Op, i.Req, o.Halted)
}
