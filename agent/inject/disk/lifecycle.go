package disk

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/workerkind"
	"github.com/turbulence-sre/turbulence/agent/sweep"
)

// markedDirsUndo is the undo record of a disk fault before its worker (if
// any) runs: the marked directory it is about to make.
func markedDirsUndo(dir string) []byte {
	b, err := json.Marshal(workerkind.Undo{MarkedDirs: []string{dir}})
	if err != nil {
		panic(err) // a list of strings always encodes
	}
	return b
}

// removeRecordedDirs removes the marked directories r's undo record names,
// with owner's marks checked. No record: nothing was made.
func removeRecordedDirs(r inject.Recorded, owner inject.Owner) error {
	if len(r.Undo) == 0 {
		return nil
	}
	var u workerkind.Undo
	if err := json.Unmarshal(r.Undo, &u); err != nil {
		return fmt.Errorf("disk fault %s: undo record: %w", r.FaultID, err)
	}
	for _, d := range u.MarkedDirs {
		if err := sweep.RemoveMarkedDir(d, owner.StateDir); err != nil {
			return err
		}
	}
	return nil
}

// sweepDirs removes owner's directories marked with prefix that no fault
// in open names, and reports other owners'.
func sweepDirs(procRoot string, owner inject.Owner, prefix string, open []inject.Recorded) (inject.Swept, error) {
	keep := make([]string, 0, len(open))
	for _, r := range open {
		keep = append(keep, r.FaultID)
	}
	slices.Sort(keep)
	removed, foreign, err := sweep.Files(procRoot, owner.StateDir, prefix, keep)
	return inject.Swept{Removed: removed, Foreign: foreign}, err
}
