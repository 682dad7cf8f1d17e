package fsm

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// handler applies one kind of command. It returns the response of the
// entry: a cloned proto message on success, an error on rejection.
type handler func(m state.Meta, e *raftv1.LogEntry) (any, error)

// FSM applies raft log entries to a state.State.
type FSM struct {
	state    *state.State
	handlers map[reflect.Type]handler
	logger   *slog.Logger
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM that applies entries to st.
func New(st *state.State, logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{state: st, logger: logger}
	f.handlers = map[reflect.Type]handler{
		reflect.TypeFor[*raftv1.LogEntry_RegisterAgent](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			return st.ApplyRegisterAgent(m, e.GetRegisterAgent().GetAgent())
		},
		reflect.TypeFor[*raftv1.LogEntry_CreateFault](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			return st.ApplyCreateFault(m, e.GetCreateFault().GetFault())
		},
		reflect.TypeFor[*raftv1.LogEntry_UpdateFault](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			u := e.GetUpdateFault()
			var since time.Time
			if u.GetUnconfirmedSince() != nil {
				since = u.GetUnconfirmedSince().AsTime()
			}
			return st.ApplyUpdateFault(m, state.FaultUpdate{FaultID: u.GetFaultId(), State: u.GetState(), Reason: u.GetReason(), Status: u.GetStatus(), UnconfirmedSince: since})
		},
		reflect.TypeFor[*raftv1.LogEntry_SetHalt](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			h := e.GetSetHalt()
			return st.ApplySetHalt(m, h.GetHalted(), h.GetReason())
		},
		reflect.TypeFor[*raftv1.LogEntry_CreateFaultGroup](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			return st.ApplyCreateFaultGroup(m, e.GetCreateFaultGroup().GetGroup())
		},
		reflect.TypeFor[*raftv1.LogEntry_RevertFaultGroup](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			r := e.GetRevertFaultGroup()
			return st.ApplyRevertFaultGroup(m, r.GetGroupId(), r.GetReason())
		},
		reflect.TypeFor[*raftv1.LogEntry_CreateExperiment](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			return st.ApplyCreateExperiment(m, e.GetCreateExperiment().GetExperiment())
		},
		reflect.TypeFor[*raftv1.LogEntry_UpdateExperiment](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			return st.ApplyUpdateExperiment(m, e.GetUpdateExperiment())
		},
		reflect.TypeFor[*raftv1.LogEntry_Prune](): func(m state.Meta, e *raftv1.LogEntry) (any, error) {
			p := e.GetPrune()
			res, err := st.ApplyPrune(m, state.Prune{
				Retention: state.Retention{
					EndedFaultAge:    p.GetEndedFaultAge().AsDuration(),
					MaxEndedFaults:   int(p.GetMaxEndedFaults()),
					DepartedAgentAge: p.GetDepartedAgentAge().AsDuration(),
				},
				DepartedAgentIDs: p.GetDepartedAgentIds(),
			})
			if err != nil {
				return nil, err
			}
			return res, nil
		},
		// RecordAudit has no effect of its own: the audit record that
		// Apply appends for every audited entry is the whole point.
		reflect.TypeFor[*raftv1.LogEntry_RecordAudit](): func(state.Meta, *raftv1.LogEntry) (any, error) {
			return nil, nil
		},
	}
	return f
}

// State returns the state the FSM applies to.
func (f *FSM) State() *state.State { return f.state }

// DecodeEntry decodes a raft log entry's data and checks that it carries
// a command. It never panics, whatever the input.
func DecodeEntry(data []byte) (*raftv1.LogEntry, error) {
	var e raftv1.LogEntry
	if err := proto.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode log entry: %w", err)
	}
	if e.GetCmd() == nil {
		return nil, fmt.Errorf("log entry %q carries no known command", e.GetRequestId())
	}
	return &e, nil
}

// Apply applies one committed entry. The response is the resulting
// message (*turbulencev1.Fault, *turbulencev1.Agent,
// *turbulencev1.HaltStatus, *turbulencev1.FaultGroup, *turbulencev1.Experiment, state.PruneResult, *turbulencev1.AuditEntry for RecordAudit) or
// an error for a rejected command. An entry that carries an Audit gets
// its audit record whether the command was applied or rejected.
func (f *FSM) Apply(l *raft.Log) any {
	e, err := DecodeEntry(l.Data)
	if err != nil {
		// A replica that cannot apply must stop, not diverge.
		panic(fmt.Sprintf("fsm: raft log index %d: %v", l.Index, err))
	}
	h, ok := f.handlers[reflect.TypeOf(e.GetCmd())]
	if !ok {
		panic(fmt.Sprintf("fsm: raft log index %d: no handler for %T", l.Index, e.GetCmd()))
	}
	m := state.Meta{RequestID: e.GetRequestId(), Actor: e.GetActor()}
	// Determinism: the only clock is the leader's stamp in the entry. A
	// missing stamp gives the zero time on every replica alike.
	if e.GetProposedAt() != nil {
		m.Time = e.GetProposedAt().AsTime()
	}
	resp, err := h(m, e)
	if a := e.GetAudit(); a != nil {
		// Same entry, same Apply: the write and its audit record commit
		// together, so a write whose record cannot be committed fails
		// with it (docs/design.md, controller state: "an audit log of every
		// mutating call with the caller's identity").
		rec := f.state.ApplyAudit(m, state.AuditRecord{Action: a.GetAction(), Summary: a.GetSummary()}, err)
		if resp == nil && err == nil {
			resp = rec
		}
	}
	if err != nil {
		f.logger.Debug("entry rejected", "index", l.Index, "request_id", m.RequestID, "error", err)
		return err
	}
	return resp
}

// Snapshot captures the state as records. Persist may run while later
// entries are applied: the records are copies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{records: f.state.Records()}, nil
}

// Restore replaces the state with the snapshot's content.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	records, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	return f.state.Replace(records)
}

type snapshot struct {
	records []*raftv1.SnapshotRecord
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.records); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
