package disk

import (
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/workerkind"
	"github.com/turbulence-sre/turbulence/agent/sweep"
)

// markedDirsUndo is the undo record of a disk fault before its worker (if
// any) runs: the marked directory it is about to make.
func markedDirsUndo(dir string) []byte {
	return inject.EncodeUndo(workerkind.Undo{MarkedDirs: []string{dir}})
}

// removeRecordedDirs removes the marked directories r's undo record names,
// with owner's marks checked. No record: nothing was made.
func removeRecordedDirs(r inject.Recorded, owner inject.Owner) error {
	u, _, err := inject.DecodeUndo[workerkind.Undo](r)
	if err != nil {
		return err
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
	removed, foreign, err := sweep.Files(procRoot, owner.StateDir, prefix, keep)
	return inject.Swept{Removed: removed, Foreign: foreign}, err
}
