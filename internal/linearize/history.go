package linearize

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// History records the operations of a run, with their call and return
// times, for Check. It is safe for concurrent use.
type History struct {
	start time.Time

	mu    sync.Mutex
	ops   []porcupine.Operation
	notes []porcupine.Annotation
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Record adds one operation that was called at call and got out at ret.
// meta (which node answered, say) is shown in the visualisation only.
func (h *History) Record(client int, in Input, out Output, call, ret time.Time, meta any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{
		ClientId: client, Input: in, Output: out, Metadata: meta,
		Call: h.at(call), Return: h.at(ret),
	})
}

// Note adds what happened to the cluster (a kill, a partition) from start
// to end to the visualisation; a zero end marks a point in time.
func (h *History) Note(what string, start, end time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := porcupine.Annotation{Tag: "cluster", Description: what, Start: h.at(start)}
	if !end.IsZero() {
		a.End = h.at(end)
	}
	h.notes = append(h.notes, a)
}

func (h *History) at(t time.Time) int64 { return t.Sub(h.start).Nanoseconds() }

// Operations returns a copy of the operations recorded so far.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Counts returns how many operations of each kind were recorded.
func (h *History) Counts() map[Op]int {
	counts := map[Op]int{}
	for _, op := range h.Operations() {
		switch o := op.Input.(Input).Op; o {
		case OpListComplete:
			// One paged list is recorded as two operations; count it
			// once, as a list.
			counts[OpList]++
		case OpListExisting:
		default:
			counts[o]++
		}
	}
	return counts
}

// Acknowledged returns the IDs of the faults that applies and group
// applies were answered with (not refusals), sorted and without
// duplicates.
func (h *History) Acknowledged() []string {
	acked := map[string]bool{}
	for _, op := range h.Operations() {
		out := op.Output.(Output)
		switch op.Input.(Input).Op {
		case OpApply:
			if !out.Refused {
				acked[out.FaultID] = true
			}
		case OpApplyGroup:
			for _, id := range out.FaultIDs {
				acked[id] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(acked))
}

// Check runs porcupine over the history against Model, for at most
// timeout. When the history is not linearizable it returns an explanation
// (Explain) and, if vizPath is not empty, writes porcupine's
// visualisation there, the notes included.
func (h *History) Check(timeout time.Duration, vizPath string) (res porcupine.CheckResult, explanation string, err error) {
	ops := h.Operations()
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	if res != porcupine.Illegal {
		return res, "", nil
	}
	explanation = Explain(ops, info)
	if vizPath != "" {
		h.mu.Lock()
		info.AddAnnotations(h.notes)
		h.mu.Unlock()
		err = porcupine.VisualizePath(Model, info, vizPath)
	}
	return res, explanation, err
}

// Explain says where a history that is not linearizable gets stuck: how
// much of it the longest partial linearization covers, the state it
// reaches, and the operation that cannot come next (the one whose answer
// came first among those left) with the operations concurrent with it.
func Explain(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	parts := info.PartialLinearizations()
	if len(parts) == 0 {
		return "porcupine gave no partial linearization"
	}
	var best []int
	for _, p := range parts[0] {
		if len(p) > len(best) {
			best = p
		}
	}
	st := Model.Init()
	done := make(map[int]bool, len(best))
	for _, i := range best {
		_, st = Model.Step(st, ops[i].Input, ops[i].Output)
		done[i] = true
	}
	stuck := -1
	for i, op := range ops {
		if !done[i] && (stuck < 0 || op.Return < ops[stuck].Return) {
			stuck = i
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "linearized %d of %d operations, reaching state %q", len(best), len(ops), Model.DescribeState(st))
	if stuck < 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "; cannot place next: %s", describeOp(ops[stuck]))
	if l, ok := ops[stuck].Output.(Output); ok && isList(ops[stuck].Input.(Input).Op) {
		fmt.Fprintf(&b, " (answered %v)", l.IDs)
	}
	var concurrent []string
	for i, op := range ops {
		if i != stuck && !done[i] && op.Call <= ops[stuck].Return {
			concurrent = append(concurrent, describeOp(op))
		}
	}
	if len(concurrent) > 0 {
		fmt.Fprintf(&b, "; also open then: %s", strings.Join(concurrent, "; "))
	}
	return b.String()
}

func describeOp(op porcupine.Operation) string {
	s := fmt.Sprintf("client %d %s [%s, %s]", op.ClientId, describe(op.Input.(Input), op.Output.(Output)),
		time.Duration(op.Call).Round(time.Millisecond), time.Duration(op.Return).Round(time.Millisecond))
	if op.Metadata != nil {
		s += fmt.Sprintf(" %v", op.Metadata)
	}
	return s
}

func isList(o Op) bool { return o == OpList || o == OpListComplete || o == OpListExisting }
