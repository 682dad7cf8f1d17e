package cli

import (
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var diskFillKind = applyKind{
	name:  "disk-fill",
	short: "Fill a filesystem: bytes, a percentage of it, or all but N bytes",
	long: `Take space away from the filesystem that holds --path (its mount is the
target) with a file allocated in a marked directory at the root of that mount.

Exactly one of --bytes SIZE (e.g. 10GiB), --percent P (fill until the
filesystem is P % used, as df counts it: size minus the space available to
unprivileged users) or --leave-free SIZE (fill until only SIZE is available).

The agent never takes a filesystem below its local policy's minimum free space
(disk.min_free_bytes and disk.min_free_percent, whichever is larger): a fill
that would is refused, naming the limit, unless --cap is given, in which case
the agent fills up to the limit and says so in 'turbctl fault show'. While the
fill holds, it gives space back if the host's own writes need it. The agent
also refuses a path that does not exist, a read-only filesystem and the
filesystem types its policy excludes.

Example:
  turbctl fault apply disk-fill --agent db-2 --path /var/lib/postgresql --percent 95 --cap --duration 10m`,
	bind: bindDiskFill,
}

func bindDiskFill(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		path, size, leave string
		pct               uint32
	)
	f := cmd.Flags()
	f.StringVar(&path, "path", "", "absolute path on the filesystem to fill (required)")
	f.StringVar(&size, "bytes", "", "bytes to fill, e.g. 10GiB")
	f.Uint32Var(&pct, "percent", 0, "fill until the filesystem is this percent used, 1..100")
	f.StringVar(&leave, "leave-free", "", "fill until only this much is available, e.g. 2GiB")
	capped := f.Bool("cap", false, "fill up to the agent's minimum free space instead of refusing")

	return func(spec *turbulencev1.FaultSpec) error {
		if path == "" {
			return usagef("--path is required")
		}
		fill := &turbulencev1.DiskFillSpec{Path: path, Cap: *capped}
		n := 0
		for _, name := range []string{"bytes", "percent", "leave-free"} {
			if f.Changed(name) {
				n++
			}
		}
		if n != 1 {
			return usagef("exactly one of --bytes, --percent or --leave-free is required")
		}
		switch {
		case f.Changed("bytes"):
			b, err := config.ParseByteSize(size)
			if err != nil {
				return invalidf("--bytes: %v", err)
			}
			if b == 0 {
				return invalidf("--bytes must be greater than 0")
			}
			fill.Size = &turbulencev1.DiskFillSpec_Bytes{Bytes: uint64(b)}
		case f.Changed("percent"):
			if pct < 1 || pct > 100 {
				return invalidf("--percent must be between 1 and 100, got %d", pct)
			}
			fill.Size = &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: pct}
		default:
			b, err := config.ParseByteSize(leave)
			if err != nil {
				return invalidf("--leave-free: %v", err)
			}
			fill.Size = &turbulencev1.DiskFillSpec_LeaveFreeBytes{LeaveFreeBytes: uint64(b)}
		}
		spec.Kind = &turbulencev1.FaultSpec_DiskFill{DiskFill: fill}
		return nil
	}
}

var diskIOKind = applyKind{
	name:  "disk-io",
	short: "Load the storage under a path with reads, writes or both",
	long: `Put an I/O load on the filesystem that holds --path, from a worker process on
the agent's host that reads and writes blocks of a scratch file at random
offsets (the file lives in a marked directory at the root of the mount and is
removed with the fault).

--mode read, write or mixed (required). --rate SIZE per second (e.g. 50MiB)
and/or --iops N set the target (the tighter wins; neither: as fast as the
storage goes). --block-size (default 4KiB), --workers concurrent operations
(default 1), --direct for O_DIRECT (where the filesystem refuses it the load
runs buffered and 'turbctl fault show' says so). The agent measures the rate it
achieved and marks the fault degraded when it misses the target by over 10 %.

Example:
  turbctl fault apply disk-io --agent db-2 --path /var/lib/postgresql --mode mixed --iops 2000 --direct --duration 5m`,
	bind: bindDiskIO,
}

func bindDiskIO(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		path, mode, rateFlag, bs string
		iops, workers            uint32
	)
	f := cmd.Flags()
	f.StringVar(&path, "path", "", "absolute path on the filesystem to load (required)")
	f.StringVar(&mode, "mode", "", "read, write or mixed (required)")
	f.StringVar(&rateFlag, "rate", "", "target bandwidth per second, e.g. 50MiB (default: unbounded)")
	f.Uint32Var(&iops, "iops", 0, "target operations per second (default: unbounded)")
	f.StringVar(&bs, "block-size", "4KiB", "bytes per operation, a multiple of 512")
	f.Uint32Var(&workers, "workers", 1, "concurrent operations")
	direct := f.Bool("direct", false, "bypass the page cache (O_DIRECT)")

	return func(spec *turbulencev1.FaultSpec) error {
		if path == "" {
			return usagef("--path is required")
		}
		d := &turbulencev1.DiskIOSpec{Path: path, Iops: iops, Workers: workers, Direct: *direct}
		switch mode {
		case "read":
			d.Mode = turbulencev1.DiskIOMode_DISK_IO_MODE_READ
		case "write":
			d.Mode = turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE
		case "mixed":
			d.Mode = turbulencev1.DiskIOMode_DISK_IO_MODE_MIXED
		case "":
			return usagef("--mode is required (read, write or mixed)")
		default:
			return invalidf("--mode must be read, write or mixed, got %q", mode)
		}
		if f.Changed("rate") {
			b, err := config.ParseByteSize(rateFlag)
			if err != nil {
				return invalidf("--rate: %v", err)
			}
			if b == 0 {
				return invalidf("--rate must be greater than 0")
			}
			d.BytesPerSecond = uint64(b)
		}
		b, err := config.ParseByteSize(bs)
		if err != nil {
			return invalidf("--block-size: %v", err)
		}
		if b < 512 || b > faultspec.MaxBlockSize || b%512 != 0 {
			return invalidf("--block-size must be a multiple of 512 between 512B and %s, got %s", bytesIEC(faultspec.MaxBlockSize), bs)
		}
		d.BlockSizeBytes = uint32(b)
		if workers < 1 || workers > faultspec.MaxIOWorkers {
			return invalidf("--workers must be between 1 and %d, got %d", faultspec.MaxIOWorkers, workers)
		}
		spec.Kind = &turbulencev1.FaultSpec_DiskIo{DiskIo: d}
		return nil
	}
}

// diskRows prints what a disk fault achieved beside what was asked:
// the filesystem, bytes filled against the target, the measured rate
// against the target, and the agent's notes (a cap, buffered I/O).
func diskRows(w io.Writer, spec *turbulencev1.FaultSpec, ds *turbulencev1.DiskStats) {
	_, fill := spec.GetKind().(*turbulencev1.FaultSpec_DiskFill)
	_, load := spec.GetKind().(*turbulencev1.FaultSpec_DiskIo)
	if !fill && !load && ds == nil {
		return
	}
	fs := none
	if ds.GetMountPoint() != "" {
		fs = ds.GetMountPoint()
		if size := ds.GetFilesystemBytes(); size > 0 {
			fs += " (" + bytesIEC(ds.GetAvailableBytes()) + " available of " + bytesIEC(size) + ", " +
				strconv.FormatFloat(100*(1-float64(ds.GetAvailableBytes())/float64(size)), 'f', 1, 64) + "% used)"
		}
	}
	row(w, "  Filesystem:", fs)
	if fill {
		filled := none
		if ds.GetFilledBytes() > 0 || ds.GetTargetBytes() > 0 {
			filled = bytesIEC(ds.GetFilledBytes())
			if t := ds.GetTargetBytes(); t > 0 {
				filled += " (" + strconv.FormatFloat(100*float64(ds.GetFilledBytes())/float64(t), 'f', 1, 64) + "% of the " + bytesIEC(t) + " target)"
			}
		}
		row(w, "  Filled:", filled)
	}
	if load {
		row(w, "  Measured I/O:", ioRate(ds.GetMeasuredBytesPerSecond(), ds.GetMeasuredIops()))
		row(w, "  Target I/O:", ioRate(ds.GetTargetBytesPerSecond(), ds.GetTargetIops()))
		row(w, "  Direct I/O:", yesNo(ds.GetDirect()))
	}
	notes := none
	if len(ds.GetNotes()) > 0 {
		notes = strings.Join(ds.GetNotes(), "; ")
	}
	row(w, "  Notes:", notes)
}

// ioRate renders a rate: "32.0MiB/s, 512 IOPS"; zero is unbounded or
// unmeasured and renders as "-".
func ioRate(bps, iops float64) string {
	if bps <= 0 && iops <= 0 {
		return none
	}
	return bytesIEC(uint64(bps)) + "/s, " + strconv.FormatFloat(iops, 'f', 0, 64) + " IOPS"
}

// diskMeasured is the MEASURED cell of a disk fault in `fault ls`.
func diskMeasured(ds *turbulencev1.DiskStats) string {
	switch {
	case ds.GetMeasuredBytesPerSecond() > 0:
		return "io " + bytesIEC(uint64(ds.GetMeasuredBytesPerSecond())) + "/s"
	case ds.GetFilledBytes() > 0:
		return "filled " + bytesIEC(ds.GetFilledBytes()) + " on " + filepath.Clean(ds.GetMountPoint())
	}
	return ""
}
