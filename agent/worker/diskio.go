package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
)

// The disk I/O worker puts a paced load of reads, writes or both on one
// scratch file: Workers goroutines, each with its own descriptor, issue
// BlockSize operations at random aligned offsets, together at most
// IOPS operations or BytesPerSecond bytes per second (the tighter of the
// two; neither set means as fast as the storage goes). It first writes the
// whole file once (so that reads hit real blocks, not holes), then creates
// DiskIOReadyName beside it: the injector measures from then on.
//
// The worker writes nowhere but its scratch file and that marker: --file
// must name DiskIOScratchName inside a directory whose name carries the
// I/O mark (agent/sweep), so that no argv, however built, can point its
// writes at a file of the host's.

// Names inside a disk I/O fault's marked directory.
const (
	DiskIOScratchName = "scratch"
	DiskIOReadyName   = "ready"
	// diskIODirPrefix is agent/sweep.IODirPrefix (not imported: the
	// worker depends on the contract, not the package).
	diskIODirPrefix = ".turbulence-io-"
)

// Disk I/O modes, as --mode spells them.
const (
	DiskIORead  = "read"
	DiskIOWrite = "write"
	DiskIOMixed = "mixed"
)

// MaxDiskIOFileBytes bounds --file-bytes.
const MaxDiskIOFileBytes = 64 << 30

// DiskIOSpec is everything a disk I/O worker needs. Args and
// ParseDiskIOArgs must round-trip, like Spec's.
type DiskIOSpec struct {
	// FaultID marks the worker's argv for the sweep (docs/users.md L3).
	FaultID string
	// Owner is the owning agent's state directory, absolute: the sweep of
	// one agent never kills another's workers (invariant 7).
	Owner string
	// File is the scratch file, absolute (see the package comment).
	File string
	// FileBytes is the scratch file's size; offsets are drawn within it.
	FileBytes uint64
	// Mode is DiskIORead, DiskIOWrite or DiskIOMixed (alternating).
	Mode string
	// BytesPerSecond and IOPS are the targets; 0 is unbounded.
	BytesPerSecond uint64
	IOPS           uint32
	// BlockSize is the size of every operation; Workers the goroutines.
	BlockSize uint32
	Workers   uint32
	// Direct opens the file with O_DIRECT. The injector probes it first;
	// the worker fails rather than fall back silently.
	Direct bool
	// Deadline is when the worker exits by itself. Required.
	Deadline time.Time
	// Nice is as in Spec.
	Nice int
}

// Validate checks every field and returns all problems at once.
func (s DiskIOSpec) Validate(now time.Time) error {
	errs := validateCommon(s.FaultID, s.Owner, s.Deadline, s.Nice, now)
	switch {
	case !filepath.IsAbs(s.File) || filepath.Clean(s.File) != s.File:
		errs = append(errs, fmt.Errorf("--file must be a clean absolute path, got %q", s.File))
	case filepath.Base(s.File) != DiskIOScratchName || !strings.HasPrefix(filepath.Base(filepath.Dir(s.File)), diskIODirPrefix):
		errs = append(errs, fmt.Errorf("--file must be %s in a %s* directory, got %q", DiskIOScratchName, diskIODirPrefix, s.File))
	}
	switch s.Mode {
	case DiskIORead, DiskIOWrite, DiskIOMixed:
	default:
		errs = append(errs, fmt.Errorf("--mode must be read, write or mixed, got %q", s.Mode))
	}
	if s.BlockSize < 512 || s.BlockSize > faultspec.MaxBlockSize || s.BlockSize%512 != 0 {
		errs = append(errs, fmt.Errorf("--block-size must be a multiple of 512 between 512 and %d, got %d", faultspec.MaxBlockSize, s.BlockSize))
	}
	if s.Workers < 1 || s.Workers > faultspec.MaxIOWorkers {
		errs = append(errs, fmt.Errorf("--workers must be between 1 and %d, got %d", faultspec.MaxIOWorkers, s.Workers))
	}
	if s.BlockSize > 0 && (s.FileBytes < uint64(s.BlockSize) || s.FileBytes > MaxDiskIOFileBytes || s.FileBytes%uint64(s.BlockSize) != 0) {
		errs = append(errs, fmt.Errorf("--file-bytes must be a multiple of --block-size between it and %d, got %d", uint64(MaxDiskIOFileBytes), s.FileBytes))
	}
	return errors.Join(errs...)
}

// OpsPerSecond is the operation rate the worker paces to, over all its
// goroutines: the tighter of IOPS and BytesPerSecond/BlockSize; 0 means
// unbounded.
func (s DiskIOSpec) OpsPerSecond() float64 {
	var r float64
	if s.IOPS > 0 {
		r = float64(s.IOPS)
	}
	if s.BytesPerSecond > 0 && s.BlockSize > 0 {
		b := float64(s.BytesPerSecond) / float64(s.BlockSize)
		if r == 0 || b < r {
			r = b
		}
	}
	return r
}

// Args returns the worker argv for s, starting with the kind word.
func (s DiskIOSpec) Args() []string {
	args := []string{
		"disk-io",
		"--fault-id", s.FaultID,
	}
	args = append(args, ownerArgs(s.Owner)...)
	args = append(args, []string{
		"--file", s.File,
		"--file-bytes", strconv.FormatUint(s.FileBytes, 10),
		"--mode", s.Mode,
		"--block-size", strconv.FormatUint(uint64(s.BlockSize), 10),
		"--workers", strconv.FormatUint(uint64(s.Workers), 10),
		"--deadline", strconv.FormatInt(s.Deadline.UnixNano(), 10),
	}...)
	if s.BytesPerSecond > 0 {
		args = append(args, "--bytes-per-second", strconv.FormatUint(s.BytesPerSecond, 10))
	}
	if s.IOPS > 0 {
		args = append(args, "--iops", strconv.FormatUint(uint64(s.IOPS), 10))
	}
	if s.Direct {
		args = append(args, "--direct")
	}
	return appendNice(args, s.Nice)
}

// ParseDiskIOArgs reads a DiskIOSpec from the words after "worker
// disk-io" and validates it. Unknown flags and positional arguments are
// errors.
func ParseDiskIOArgs(args []string) (DiskIOSpec, error) {
	fs := flag.NewFlagSet("worker disk-io", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		s               DiskIOSpec
		deadline        int64
		iops, bs, works uint
	)
	fs.StringVar(&s.FaultID, "fault-id", "", "fault ID (marks the process)")
	fs.StringVar(&s.Owner, "owner", "", "state directory of the owning agent (marks the process)")
	fs.StringVar(&s.File, "file", "", "scratch file, inside the fault's marked directory")
	fs.Uint64Var(&s.FileBytes, "file-bytes", 0, "scratch file size")
	fs.StringVar(&s.Mode, "mode", "", "read, write or mixed")
	fs.Uint64Var(&s.BytesPerSecond, "bytes-per-second", 0, "target bandwidth (0: unbounded)")
	fs.UintVar(&iops, "iops", 0, "target operations per second (0: unbounded)")
	fs.UintVar(&bs, "block-size", 0, "bytes per operation")
	fs.UintVar(&works, "workers", 0, "concurrent operations")
	fs.BoolVar(&s.Direct, "direct", false, "open the file with O_DIRECT")
	fs.Int64Var(&deadline, "deadline", 0, "unix nanoseconds at which to exit")
	fs.IntVar(&s.Nice, "nice", 0, "nice level of every worker thread")
	if err := fs.Parse(args); err != nil {
		return DiskIOSpec{}, err
	}
	if fs.NArg() > 0 {
		return DiskIOSpec{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	const maxU32 = 1<<32 - 1
	if iops > maxU32 || bs > maxU32 || works > maxU32 {
		return DiskIOSpec{}, errors.New("--iops, --block-size and --workers must fit in 32 bits")
	}
	s.IOPS, s.BlockSize, s.Workers = uint32(iops), uint32(bs), uint32(works)
	if deadline > 0 {
		s.Deadline = time.Unix(0, deadline)
	}
	if err := s.Validate(time.Now()); err != nil {
		return DiskIOSpec{}, err
	}
	return s, nil
}
