package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func cleanedStatus(id string, at time.Time) *turbulencev1.FaultStatus {
	return &turbulencev1.FaultStatus{FaultId: id, State: stateReverted, Reason: ReasonCleanup, EndedAt: timestamppb.New(at)}
}

// The file keeps at most maxUnreported outcomes, dropping the oldest and
// saying how many, and one outcome per fault.
func TestKeepUnreported_BoundedOldestDroppedOnePerFault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	full := unreportedFile{Version: unreportedVersion}
	for i := range maxUnreported {
		full.Outcomes = append(full.Outcomes, outcomeOf(cleanedStatus(fmt.Sprintf("f-%04d", i), at)))
	}
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileDurably(dir, UnreportedFile, data); err != nil {
		t.Fatal(err)
	}

	if dropped, err := keepUnreported(dir, cleanedStatus("f-new", at.Add(time.Second))); err != nil || dropped != 1 {
		t.Fatalf("keep into a full file = %d dropped, %v; want 1, nil", dropped, err)
	}
	// Kept again (a cleanup that died before closing the journal record):
	// replaced, not doubled, so nothing more is dropped.
	if dropped, err := keepUnreported(dir, cleanedStatus("f-new", at.Add(2*time.Second))); err != nil || dropped != 0 {
		t.Fatalf("keep of the same fault again = %d dropped, %v; want 0, nil", dropped, err)
	}
	kept, err := loadUnreported(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != maxUnreported || kept[0].FaultID != "f-0001" || kept[len(kept)-1].FaultID != "f-new" {
		t.Fatalf("kept %d outcomes from %s to %s, want %d from f-0001 (f-0000 dropped) to f-new", len(kept), kept[0].FaultID, kept[len(kept)-1].FaultID, maxUnreported)
	}
	if last := kept[len(kept)-1]; !last.EndedAt.Equal(at.Add(2 * time.Second)) {
		t.Errorf("f-new ended_at = %s, want the later outcome's", last.EndedAt)
	}
}

// Each way a file can be wrong is named and reported as malformed.
func TestLoadUnreported_MalformedNamesTheProblem(t *testing.T) {
	t.Parallel()
	many := unreportedFile{Version: unreportedVersion}
	for i := range maxUnreported + 1 {
		many.Outcomes = append(many.Outcomes, outcomeOf(cleanedStatus(fmt.Sprintf("f-%d", i), time.Now())))
	}
	tooMany, err := json.Marshal(many)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ data, want string }{
		"torn":        {`{"version":1,"outcomes":[{"fault_`, "unexpected end"},
		"version":     {`{"version":2,"outcomes":[]}`, "version 2"},
		"no fault_id": {`{"version":1,"outcomes":[{"state":"REVERTED","ended_at":"2026-12-03T12:00:00Z"}]}`, "fault_id"},
		"state":       {`{"version":1,"outcomes":[{"fault_id":"f","state":"ACTIVE","ended_at":"2026-12-03T12:00:00Z"}]}`, `state "ACTIVE"`},
		"no ended_at": {`{"version":1,"outcomes":[{"fault_id":"f","state":"REVERTED"}]}`, "ended_at"},
		"too many":    {string(tooMany), "1025 outcomes, over the 1024 limit"},
		"too big":     {strings.Repeat(" ", maxUnreportedBytes+1), "over 8388608 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, UnreportedFile), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadUnreported(dir)
			if !errors.Is(err, errUnreportedMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadUnreported = %v, want malformed naming %q", err, tc.want)
			}
		})
	}
}

// Start-up adds what cleanup kept to what it took back itself, once per
// fault, and removes the file only when told the Manager has them.
func TestTakeUnreported_AddsOncePerFaultAndRemovesWhenDone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"f-both", "f-kept"} {
		if _, err := keepUnreported(dir, cleanedStatus(id, at)); err != nil {
			t.Fatal(err)
		}
	}
	recovered := []*turbulencev1.FaultStatus{cleanedStatus("f-both", at)}
	all, done := takeUnreported(slogFor(t), dir, recovered)
	var ids []string
	for _, st := range all {
		ids = append(ids, st.GetFaultId())
	}
	if strings.Join(ids, ",") != "f-both,f-kept" {
		t.Errorf("reported %q, want f-both once, then f-kept", ids)
	}
	path := filepath.Join(dir, UnreportedFile)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file before done: %v, want it kept until the Manager has them", err)
	}
	done()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file after done: %v, want it removed", err)
	}
}
