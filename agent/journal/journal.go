package journal

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
)

// Op is what a record says happened.
type Op string

// The record kinds, in the order a fault goes through them.
const (
	OpIntent   Op = "intent"
	OpApplied  Op = "applied"
	OpReverted Op = "reverted"
)

// maxPayload bounds one record, so a corrupt length cannot make Open
// allocate gigabytes.
const maxPayload = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one journal entry.
type Record struct {
	Op      Op        `json:"op"`
	FaultID string    `json:"fault_id"`
	Kind    string    `json:"kind,omitempty"`
	At      time.Time `json:"at"`
	// Deadline is when the fault must be gone (intent records).
	Deadline time.Time `json:"deadline,omitzero"`
	// BootDeadline is Deadline on the boot clock (intent records), which
	// guardians judge it on, so that a step of the wall clock moves no
	// deadline (agent/bootclock). Zero in records of older agents.
	BootDeadline bootclock.Instant `json:"boot_deadline,omitzero"`
	// Fault is the fault as received, protobuf-encoded (intent records).
	Fault []byte `json:"fault,omitempty"`
	// Undo is what the fault's kind needs to take it back with no other
	// memory of it (applied records). It is opaque here: each kind encodes
	// and decodes its own (agent/inject.Kind.Recover).
	Undo json.RawMessage `json:"undo,omitempty"`
}

// Open is a fault the journal lists as not reverted, with everything
// recorded about it.
type Open struct {
	Intent Record
	// Applied says an applied record was written: Undo is its kind's undo
	// record (a kind writes one before it changes the host, and again
	// once the change is made).
	Applied bool
	Undo    json.RawMessage
}

// Journal appends records to one file. It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex
	path string
	f    *os.File
	open map[string]*Open
}

// OpenFile opens (creating if needed) the journal at path and replays it.
// It returns the faults the journal lists as open, in the order they were
// first recorded. A torn tail is cut off so that new records follow the
// last good one.
func OpenFile(path string) (*Journal, []Open, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create journal directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	// One owner at a time: a second agent, or `turbulence-agent cleanup`
	// while the agent runs, would revert faults the owner still holds.
	if err := lockFile(f); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	recs, good, err := readFrames(f)
	if err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return nil, nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	// Cut a torn tail so appends start on a frame boundary.
	if err := f.Truncate(good); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return nil, nil, fmt.Errorf("truncate torn journal tail: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return nil, nil, err
	}
	j := &Journal{path: path, f: f, open: make(map[string]*Open)}
	return j, j.replay(recs), nil
}

// ReadFile replays the journal at path without taking its lock or changing
// it, and returns the faults it lists as open. It is for a reader beside
// the owner (a fault's guardian, agent/guardian): records are appended
// whole and fsynced, and a torn or partly written tail is ignored, as
// OpenFile would cut it.
func ReadFile(path string) ([]Open, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	recs, _, err := readFrames(f)
	if err != nil {
		return nil, err
	}
	j := &Journal{open: make(map[string]*Open)}
	return j.replay(recs), nil
}

// replay tracks recs in order and returns the faults left open, in the
// order they were first recorded.
func (j *Journal) replay(recs []Record) []Open {
	var order []string
	for _, r := range recs {
		if j.track(r) {
			order = append(order, r.FaultID)
		}
	}
	var out []Open
	for _, id := range order {
		if o, ok := j.open[id]; ok {
			out = append(out, *o)
		}
	}
	return out
}

// track updates the set of open faults with one record and reports whether
// the record opened a new fault.
func (j *Journal) track(r Record) bool {
	switch r.Op {
	case OpIntent:
		if _, ok := j.open[r.FaultID]; ok {
			return false
		}
		j.open[r.FaultID] = &Open{Intent: r}
		return true
	case OpApplied:
		if o, ok := j.open[r.FaultID]; ok {
			o.Applied = true
			o.Undo = r.Undo
		}
	case OpReverted:
		delete(j.open, r.FaultID)
	}
	return false
}

// Append writes one record and fsyncs it. Only after Append returns may the
// caller act on it (apply after an Intent).
func (j *Journal) Append(r Record) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(payload) > maxPayload {
		return fmt.Errorf("journal record for %s is %d bytes, over the %d limit", r.FaultID, len(payload), maxPayload)
	}
	frame := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(frame[4:8], crc32.Checksum(payload, castagnoli))
	copy(frame[8:], payload)

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	if _, err := j.f.Write(frame); err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("fsync journal: %w", err)
	}
	j.track(r)
	return nil
}

// OpenFaults returns the faults currently listed as open.
func (j *Journal) OpenFaults() []Open {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Open, 0, len(j.open))
	for _, o := range j.open {
		out = append(out, *o)
	}
	return out
}

// Compact rewrites the journal with only the records of open faults, via a
// temporary file, fsync and rename, so a crash leaves either file whole.
func (j *Journal) Compact() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	tmp := j.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// Lock the new file before it takes the journal's name, so the name is
	// never unlocked.
	if err := lockFile(f); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return err
	}
	w := bufio.NewWriter(f)
	for _, o := range j.open {
		recs := []Record{o.Intent}
		if o.Applied {
			recs = append(recs, Record{Op: OpApplied, FaultID: o.Intent.FaultID, At: o.Intent.At, Undo: o.Undo})
		}
		for _, r := range recs {
			if err := writeFrame(w, r); err != nil {
				_ = f.Close() // the error being returned is the one that matters
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return err
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		_ = f.Close() // the error being returned is the one that matters
		return err
	}
	// The old file was replaced by the rename; its close error changes nothing.
	_ = j.f.Close()
	j.f = f
	return nil
}

// Close closes the file. Records already appended stay on disk.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func writeFrame(w io.Writer, r Record) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(hdr[4:8], crc32.Checksum(payload, castagnoli))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(payload)
	return err
}

// readFrames reads records from the start of f until the end or the first
// bad frame, and returns them with the offset just after the last good one.
func readFrames(f *os.File) ([]Record, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReader(f)
	var recs []Record
	var good int64
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return recs, good, nil // EOF or torn header
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n == 0 || n > maxPayload {
			return recs, good, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return recs, good, nil // torn payload
		}
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(hdr[4:8]) {
			return recs, good, nil
		}
		var rec Record
		if err := json.Unmarshal(payload, &rec); err != nil || rec.FaultID == "" {
			return recs, good, nil
		}
		recs = append(recs, rec)
		good += 8 + int64(n)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
