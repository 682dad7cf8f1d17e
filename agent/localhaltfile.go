package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// LocalHaltFile, in the state directory, records a local halt so that it
// outlives the agent process: systemd restarts a crashed agent, and a host
// whose operator pulled the kill switch must stay halted until that
// operator (or another on the host) runs `turbulence-agent resume`
// (invariant 5). Its absence means "not halted locally".
const LocalHaltFile = "local-halt.json"

// localHaltRecord is the file's content.
type localHaltRecord struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// saveLocalHalt writes the record durably: temp file, fsync, rename, fsync
// of the directory, so that a crash leaves either the old state or the new.
func saveLocalHalt(stateDir string, rec localHaltRecord) error {
	if stateDir == "" {
		return errors.New("no state directory")
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := filepath.Join(stateDir, LocalHaltFile)
	tmp, err := os.CreateTemp(stateDir, LocalHaltFile+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(stateDir)
}

// loadLocalHalt returns the recorded local halt, if any. A file that cannot
// be read or decoded counts as a halt: failing safe, the operator sees it
// in status and lifts it with resume.
func loadLocalHalt(stateDir string) (localHaltRecord, bool, error) {
	if stateDir == "" {
		return localHaltRecord{}, false, nil
	}
	data, err := os.ReadFile(filepath.Join(stateDir, LocalHaltFile))
	if errors.Is(err, fs.ErrNotExist) {
		return localHaltRecord{}, false, nil
	}
	if err != nil {
		return localHaltRecord{Reason: "local halt record unreadable"}, true, err
	}
	var rec localHaltRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return localHaltRecord{Reason: "local halt record corrupt"}, true, fmt.Errorf("%s: %w", LocalHaltFile, err)
	}
	return rec, true, nil
}

// removeLocalHalt forgets the record durably.
func removeLocalHalt(stateDir string) error {
	if stateDir == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(stateDir, LocalHaltFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(stateDir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
