package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// UnreportedFile, in the state directory, holds the outcomes of faults
// that `turbulence-agent cleanup` took back: cleanup has no session with
// the controller, and it closes the faults' journal records, so the next
// agent's start-up recovery would find nothing open and the controller
// would keep those faults UNCONFIRMED for ever (invariant 8). The next
// start reads the file, reports what it lists, and removes it. Both hold
// the journal's lock meanwhile, so a cleanup and an agent never meet over
// the file.
const UnreportedFile = "unreported"

// maxUnreported bounds the outcomes the file keeps. Cleanup runs once per
// stop of the agent, so more than this many faults taken back with no
// agent start in between means the host has not run an agent for a long
// time; the oldest outcomes are dropped (and the drop logged) rather than
// letting the file grow without end. The controller keeps a dropped
// fault UNCONFIRMED, which is what it knows.
const maxUnreported = 1024

// maxUnreportedBytes bounds what is read of the file, so a corrupt or
// foreign file cannot make start-up allocate without limit: 1024
// outcomes whose reasons are a few hundred bytes each fit well inside.
const maxUnreportedBytes = 8 << 20

// unreportedVersion is the file format's version; another is malformed.
const unreportedVersion = 1

// stateRevertedName is the only state an outcome in the file has.
const stateRevertedName = "REVERTED"

// unreportedFile is the file's content.
type unreportedFile struct {
	Version  int                 `json:"version"`
	Outcomes []unreportedOutcome `json:"outcomes"`
}

// unreportedOutcome is one fault's end, as a FaultStatus would report it.
type unreportedOutcome struct {
	FaultID  string    `json:"fault_id"`
	State    string    `json:"state"`
	Reason   string    `json:"reason"`
	EndedAt  time.Time `json:"ended_at"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// outcomeOf is st as the file keeps it.
func outcomeOf(st *turbulencev1.FaultStatus) unreportedOutcome {
	o := unreportedOutcome{FaultID: st.GetFaultId(), State: stateRevertedName, Reason: st.GetReason(), EndedAt: st.GetEndedAt().AsTime()}
	if st.GetDeadline() != nil {
		o.Deadline = st.GetDeadline().AsTime()
	}
	return o
}

// status is o as the agent reports it to the controller.
func (o unreportedOutcome) status() *turbulencev1.FaultStatus {
	st := &turbulencev1.FaultStatus{FaultId: o.FaultID, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: o.Reason, EndedAt: timestamppb.New(o.EndedAt)}
	if !o.Deadline.IsZero() {
		st.Deadline = timestamppb.New(o.Deadline)
	}
	return st
}

// check says what is wrong with o, naming the field.
func (o unreportedOutcome) check() error {
	switch {
	case o.FaultID == "":
		return errors.New("an outcome has no fault_id")
	case o.State != stateRevertedName:
		return fmt.Errorf("outcome of %s: state %q, want %q", o.FaultID, o.State, stateRevertedName)
	case o.EndedAt.IsZero():
		return fmt.Errorf("outcome of %s: no ended_at", o.FaultID)
	}
	return nil
}

// errUnreportedMalformed marks a file that cannot be decoded or breaks its
// rules: start-up logs and removes it.
var errUnreportedMalformed = errors.New("malformed")

// loadUnreported returns the outcomes in stateDir's file, oldest first;
// none and no error when there is no file. An error wrapping
// errUnreportedMalformed means the file is there but useless.
func loadUnreported(stateDir string) ([]unreportedOutcome, error) {
	f, err := os.Open(filepath.Join(stateDir, UnreportedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	data, err := io.ReadAll(io.LimitReader(f, maxUnreportedBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxUnreportedBytes {
		return nil, fmt.Errorf("%s: %w: over %d bytes", UnreportedFile, errUnreportedMalformed, maxUnreportedBytes)
	}
	var uf unreportedFile
	if err := json.Unmarshal(data, &uf); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", UnreportedFile, errUnreportedMalformed, err)
	}
	if uf.Version != unreportedVersion {
		return nil, fmt.Errorf("%s: %w: version %d, want %d", UnreportedFile, errUnreportedMalformed, uf.Version, unreportedVersion)
	}
	if len(uf.Outcomes) > maxUnreported {
		return nil, fmt.Errorf("%s: %w: %d outcomes, over the %d limit", UnreportedFile, errUnreportedMalformed, len(uf.Outcomes), maxUnreported)
	}
	for _, o := range uf.Outcomes {
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", UnreportedFile, errUnreportedMalformed, err)
		}
	}
	return uf.Outcomes, nil
}

// keepUnreported adds st to stateDir's file, durably, before its fault's
// journal record is closed. An outcome already kept for the same fault is
// replaced; past maxUnreported the oldest are dropped, and how many is
// returned. A malformed file is replaced by one holding st alone.
func keepUnreported(stateDir string, st *turbulencev1.FaultStatus) (dropped int, err error) {
	kept, err := loadUnreported(stateDir)
	if errors.Is(err, errUnreportedMalformed) {
		kept = nil // its outcomes are lost either way; do not lose this one too
	} else if err != nil {
		return 0, err
	}
	o := outcomeOf(st)
	out := make([]unreportedOutcome, 0, len(kept)+1)
	for _, k := range kept {
		if k.FaultID != o.FaultID {
			out = append(out, k)
		}
	}
	out = append(out, o)
	if n := len(out) - maxUnreported; n > 0 {
		dropped, out = n, out[n:]
	}
	data, err := json.Marshal(unreportedFile{Version: unreportedVersion, Outcomes: out})
	if err != nil {
		return 0, err
	}
	return dropped, writeFileDurably(stateDir, UnreportedFile, data)
}

// takeUnreported adds to reverted, what start-up recovery took back, the
// outcomes cleanup kept in stateDir that it does not list already (a
// cleanup that died between keeping an outcome and closing the fault's
// journal record leaves both, with the same outcome from the fault's
// lock). It returns them with done, to call once they are handed to the
// Manager: done removes the file, so that a crash before that leaves it
// for the next start. A malformed file is logged and removed at once; one
// that cannot be read is logged and left for the next start.
func takeUnreported(log *slog.Logger, stateDir string, reverted []*turbulencev1.FaultStatus) (all []*turbulencev1.FaultStatus, done func()) {
	kept, err := loadUnreported(stateDir)
	if errors.Is(err, errUnreportedMalformed) {
		log.Error("outcomes kept by cleanup are unusable: removed; the controller keeps their faults UNCONFIRMED", "err", err)
		if err := removeUnreported(stateDir); err != nil {
			log.Error("remove the unusable outcomes file", "err", err)
		}
		return reverted, func() {}
	}
	if err != nil {
		log.Error("outcomes kept by cleanup not read: left for the next start", "err", err)
		return reverted, func() {}
	}
	if len(kept) == 0 {
		return reverted, func() {}
	}
	seen := make(map[string]bool, len(reverted))
	for _, st := range reverted {
		seen[st.GetFaultId()] = true
	}
	all = reverted
	for _, o := range kept {
		if !seen[o.FaultID] {
			all = append(all, o.status())
		}
	}
	return all, func() {
		if err := removeUnreported(stateDir); err != nil {
			// They would be reported again at the next start: harmless,
			// the controller ignores an end it already recorded.
			log.Warn("remove the outcomes kept by cleanup after reporting them", "err", err)
		}
	}
}

// removeUnreported removes stateDir's file durably.
func removeUnreported(stateDir string) error {
	if err := os.Remove(filepath.Join(stateDir, UnreportedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(stateDir)
}

// writeFileDurably replaces dir/name with data: temp file, fsync, rename,
// fsync of the directory, so that a crash leaves the old file or the new,
// whole.
func writeFileDurably(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is the one that matters
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close() // the sync error is the one that matters
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}
