package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protodelim"

	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// FormatVersion is the snapshot format this binary writes and reads.
const FormatVersion = 1

// maxRecordSize bounds one record so a corrupt length cannot make the
// reader allocate without limit. No record can be larger than a gRPC
// message (4 MiB), since every record arrived as one.
const maxRecordSize = 4 << 20

// WriteSnapshot writes the header and the records to w.
func WriteSnapshot(w io.Writer, records []*raftv1.SnapshotRecord) error {
	bw := bufio.NewWriter(w)
	if _, err := protodelim.MarshalTo(bw, &raftv1.SnapshotHeader{FormatVersion: FormatVersion}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for i, r := range records {
		if _, err := protodelim.MarshalTo(bw, r); err != nil {
			return fmt.Errorf("write snapshot record %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a snapshot written by WriteSnapshot. It checks the
// header's format version and fails on a truncated or corrupt stream. It
// never panics, whatever the input.
func ReadSnapshot(r io.Reader) ([]*raftv1.SnapshotRecord, error) {
	br := bufio.NewReader(r)
	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordSize}
	var hdr raftv1.SnapshotHeader
	if err := opts.UnmarshalFrom(br, &hdr); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if hdr.GetFormatVersion() != FormatVersion {
		return nil, fmt.Errorf("snapshot format version %d, this controller reads %d", hdr.GetFormatVersion(), FormatVersion)
	}
	var out []*raftv1.SnapshotRecord
	for {
		rec := new(raftv1.SnapshotRecord)
		err := opts.UnmarshalFrom(br, rec)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read snapshot record %d: %w", len(out), err)
		}
		out = append(out, rec)
	}
}
