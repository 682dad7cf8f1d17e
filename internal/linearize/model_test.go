package linearize

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func apply(req string) Input { return Input{Op: OpApply, Req: req} }

func get(id string) Input { return Input{Op: OpGet, FaultID: id} }

var list = Input{Op: OpList}

func group(req string) Input { return Input{Op: OpApplyGroup, Req: req} }

// The model must reject what the cluster must never do; otherwise a
// passing check would prove nothing.
func TestModel_RejectsBadHistories(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"acknowledged write then read", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, list, Output{IDs: []string{"f1"}}),
			op(1, 40, 50, get("f1"), Output{Found: true}),
		}, true},
		{"acknowledged write lost", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, list, Output{}),
		}, false},
		{"acknowledged write not found by id", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, get("f1"), Output{Found: false}),
		}, false},
		{"write seen by a read before it was acknowledged", []porcupine.Operation{
			op(0, 0, 100, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, get("f1"), Output{Found: true}),
			op(1, 40, 50, list, Output{IDs: []string{"f1"}}),
		}, true},
		{"read goes back in time: seen, then not", []porcupine.Operation{
			op(0, 0, 100, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, get("f1"), Output{Found: true}),
			op(1, 40, 50, list, Output{}),
		}, false},
		{"retry made a second fault", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(0, 20, 30, apply("r1"), Output{FaultID: "f2"}),
		}, false},
		{"two requests answered with one fault", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, apply("r2"), Output{FaultID: "f1"}),
		}, false},
		{"a stranger fault appears", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(1, 20, 30, list, Output{IDs: []string{"f1", "f9"}}),
		}, false},
		{"halt read goes back in time", []porcupine.Operation{
			op(0, 0, 10, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(1, 20, 30, Input{Op: OpReadHalt}, Output{Halted: true}),
			op(1, 40, 50, Input{Op: OpReadHalt}, Output{Halted: false}),
		}, false},
		{"refused while not halted", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{Refused: true}),
		}, false},
		{"halt concurrent with apply may go either way", []porcupine.Operation{
			op(0, 0, 30, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(1, 10, 20, apply("r1"), Output{Refused: true}),
			op(1, 40, 50, apply("r2"), Output{Refused: true}),
		}, true},
		{"fault created after an acknowledged halt", []porcupine.Operation{
			op(0, 0, 10, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(1, 20, 30, apply("r1"), Output{FaultID: "f1"}),
		}, false},
		{"group then reads of its members", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(0, 20, 30, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
			op(1, 40, 50, list, Output{IDs: []string{"f1", "f2", "f3"}}),
			op(1, 60, 70, get("f3"), Output{Found: true}),
		}, true},
		{"group member lost", []porcupine.Operation{
			op(0, 0, 10, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
			op(1, 20, 30, list, Output{IDs: []string{"f2"}}),
		}, false},
		{"half a group seen while it is being made", []porcupine.Operation{
			op(0, 0, 100, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
			op(1, 20, 30, list, Output{IDs: []string{"f2"}}),
		}, false},
		{"group retry answered with other members", []porcupine.Operation{
			op(0, 0, 10, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
			op(0, 20, 30, group("g1"), Output{FaultIDs: []string{"f2", "f4"}}),
		}, false},
		{"group retry answered with the same members", []porcupine.Operation{
			op(0, 0, 10, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
			op(0, 20, 30, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(0, 40, 50, group("g1"), Output{FaultIDs: []string{"f2", "f3"}}),
		}, true},
		{"group made after an acknowledged halt", []porcupine.Operation{
			op(0, 0, 10, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(1, 20, 30, group("g1"), Output{FaultIDs: []string{"f2"}}),
		}, false},
		{"group too small while halted", []porcupine.Operation{
			op(0, 0, 10, Input{Op: OpHalt, Req: "h1"}, Output{Halted: true}),
			op(1, 20, 30, group("g1"), Output{TooSmall: true}),
		}, false},
		{"group too small, then its members appear", []porcupine.Operation{
			op(0, 0, 10, group("g1"), Output{TooSmall: true}),
			op(1, 20, 30, list, Output{IDs: []string{"f2"}}),
		}, false},
		{"group reuses a single fault's ID", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), Output{FaultID: "f1"}),
			op(0, 20, 30, group("g1"), Output{FaultIDs: []string{"f1", "f2"}}),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := porcupine.CheckOperations(Model, tt.history); got != tt.want {
				t.Errorf("CheckOperations = %v, want %v", got, tt.want)
			}
		})
	}
}

// A history that loses a write is explained by the read that missed it,
// and the visualisation is written.
func TestHistory_CheckExplainsALostWrite(t *testing.T) {
	t.Parallel()
	h := NewHistory()
	at := func(ms int) time.Time { return h.start.Add(time.Duration(ms) * time.Millisecond) }
	h.Record(0, apply("r1"), Output{FaultID: "f1"}, at(0), at(10), "via c1")
	h.Record(0, apply("r2"), Output{FaultID: "f2"}, at(20), at(30), "via c2")
	h.Record(1, list, Output{IDs: []string{"f1"}}, at(40), at(50), "via c3")
	h.Note("SIGKILL c1", at(15), time.Time{})
	if got := h.Acknowledged(); strings.Join(got, ",") != "f1,f2" {
		t.Errorf("Acknowledged() = %v, want [f1 f2]", got)
	}
	path := t.TempDir() + "/history.html"
	res, why, err := h.Check(time.Minute, path)
	if res != porcupine.Illegal || err != nil {
		t.Fatalf("Check = %v, %v; want Illegal", res, err)
	}
	for _, want := range []string{"linearized 2 of 3", "cannot place next: client 1 list() -> 1 faults", "[f1]", "via c3"} {
		if !strings.Contains(why, want) {
			t.Errorf("explanation %q lacks %q", why, want)
		}
	}
}

// TestModel_PagedList: a list read in several pages is checked as two
// facts, each true at one point: nothing of the state is missing, and
// nothing listed is made up.
func TestModel_PagedList(t *testing.T) {
	s := state{faults: map[string]string{"r1": "f1"}, groups: map[string][]string{"g1": {"f2"}}, seen: map[string]bool{}}
	tests := []struct {
		op   Op
		ids  []string
		want bool
	}{
		{OpListComplete, []string{"f1", "f2"}, true},
		{OpListComplete, []string{"f1", "f2", "f3"}, true}, // f3 made while the pages were read
		{OpListComplete, []string{"f1"}, false},            // f2 existed, and is missing
		{OpListExisting, []string{"f1"}, true},             // f2 made while the pages were read
		{OpListExisting, []string{"f1", "f3"}, false},      // f3 was never made
	}
	for _, tt := range tests {
		if ok, _ := step(s, Input{Op: tt.op}, Output{IDs: tt.ids}); ok != tt.want {
			t.Errorf("step(%s -> %v) = %v, want %v", tt.op, tt.ids, ok, tt.want)
		}
	}
}
