package disk

import (
	"errors"
	"fmt"

	"github.com/turbulence-sre/turbulence/agent/policy"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Errors of the disk injectors, wrapped with the field, the figures and
// the limit; match with errors.Is.
var (
	// ErrMinFree refuses a fault that would take the filesystem below the
	// policy's minimum free space, or a filesystem already below it.
	ErrMinFree = errors.New("minimum free space")
	// ErrNothingToFill refuses a fill whose target is already reached.
	ErrNothingToFill = errors.New("nothing to fill")
	// ErrUnsupported: disk faults need Linux.
	ErrUnsupported = errors.New("disk faults are supported on Linux only")
)

// Space is a filesystem's size and the space available on it, in bytes,
// as unprivileged users see them, and its allocation unit.
type Space struct {
	Size, Avail, Block uint64
}

// Floor returns the minimum free bytes the policy keeps on a filesystem
// of size bytes, and the policy field that sets it (the larger of the
// two), worded for an error message.
func Floor(d policy.Disk, size uint64) (uint64, string) {
	pct := percentOf(size, uint64(d.MinFreePercent))
	if uint64(d.MinFreeBytes) >= pct {
		return uint64(d.MinFreeBytes), "disk.min_free_bytes " + iec(uint64(d.MinFreeBytes))
	}
	return pct, fmt.Sprintf("disk.min_free_percent %d %% of %s", d.MinFreePercent, iec(size))
}

// percentOf is size*p/100 without overflow.
func percentOf(size, p uint64) uint64 {
	return size/100*p + size%100*p/100
}

// Plan is a resolved fill.
type Plan struct {
	// Bytes is what to allocate, a multiple of the block size.
	Bytes uint64
	// WantAvail, when Exact, is the available space the fill aims at; the
	// injector corrects its file size against statfs until it gets there.
	WantAvail uint64
	Exact     bool
	// Floor is the minimum free space, FloorRule the policy field.
	Floor     uint64
	FloorRule string
	// Note says what was done other than asked (a cap), or is empty.
	Note string
}

// PlanFill resolves spec on a filesystem with space sp under policy d: how
// much to fill, or why not. It is pure, so that the arithmetic and every
// refusal are unit-tested without a filesystem.
func PlanFill(spec *turbulencev1.DiskFillSpec, sp Space, d policy.Disk) (Plan, error) {
	block := max(sp.Block, 1)
	floor, rule := Floor(d, sp.Size)
	p := Plan{Floor: floor, FloorRule: rule}
	if sp.Avail <= floor {
		return Plan{}, fmt.Errorf("%w: spec.disk_fill.path: %s is available on the filesystem, already at or below the minimum free space of %s (%s)",
			ErrMinFree, iec(sp.Avail), iec(floor), rule)
	}
	var field, asked string
	var want uint64 // bytes to take; may exceed what the floor allows
	switch s := spec.GetSize().(type) {
	case *turbulencev1.DiskFillSpec_Bytes:
		field, asked = "spec.disk_fill.bytes", iec(s.Bytes)
		want = roundUp(s.Bytes, block)
		if s.Bytes > sp.Avail {
			want = s.Bytes // only compared below; never allocated
		}
	case *turbulencev1.DiskFillSpec_PercentOfFilesystem:
		field, asked = "spec.disk_fill.percent_of_filesystem", fmt.Sprintf("%d %% of %s", s.PercentOfFilesystem, iec(sp.Size))
		p.WantAvail, p.Exact = sp.Size-percentOf(sp.Size, uint64(s.PercentOfFilesystem)), true
		if sp.Avail <= p.WantAvail {
			return Plan{}, fmt.Errorf("%w: %s: the filesystem is already %.1f %% used (%s available of %s), at or above the %d %% asked",
				ErrNothingToFill, field, usedPercent(sp), iec(sp.Avail), iec(sp.Size), s.PercentOfFilesystem)
		}
		want = sp.Avail - p.WantAvail
	case *turbulencev1.DiskFillSpec_LeaveFreeBytes:
		field, asked = "spec.disk_fill.leave_free_bytes", "leave "+iec(s.LeaveFreeBytes)+" free"
		p.WantAvail, p.Exact = s.LeaveFreeBytes, true
		if sp.Avail <= p.WantAvail {
			return Plan{}, fmt.Errorf("%w: %s: only %s is available, at or below the %s asked to leave free",
				ErrNothingToFill, field, iec(sp.Avail), iec(s.LeaveFreeBytes))
		}
		want = sp.Avail - p.WantAvail
	default:
		return Plan{}, errors.New("spec.disk_fill.size: one of bytes, percent_of_filesystem or leave_free_bytes is required")
	}
	limit := (sp.Avail - floor) / block * block
	if want > limit {
		if !spec.GetCap() {
			return Plan{}, fmt.Errorf("%w: %s: %s would take %s, but only %s may be filled before the minimum free space of %s (%s); ask less, or set cap to fill up to the limit",
				ErrMinFree, field, asked, iec(want), iec(limit), iec(floor), rule)
		}
		if limit == 0 {
			return Plan{}, fmt.Errorf("%w: %s: less than one block may be filled before the minimum free space of %s (%s)", ErrMinFree, field, iec(floor), rule)
		}
		p.Note = fmt.Sprintf("capped at the minimum free space: %s filled of the %s asked, leaving %s (%s)", iec(limit), iec(want), iec(floor), rule)
		p.Bytes, p.WantAvail = limit, floor
		return p, nil
	}
	p.Bytes = want / block * block
	if !p.Exact {
		p.Bytes = want // already rounded up, and within the limit
	}
	if p.Bytes == 0 {
		return Plan{}, fmt.Errorf("%w: %s: %s is less than one block (%s)", ErrNothingToFill, field, asked, iec(block))
	}
	return p, nil
}

// usedPercent is the share of the size not available, in percent.
func usedPercent(sp Space) float64 {
	if sp.Size == 0 {
		return 0
	}
	return 100 * (1 - float64(sp.Avail)/float64(sp.Size))
}

func roundUp(n, unit uint64) uint64 { return (n + unit - 1) / unit * unit }

// iec renders bytes for a person: "1.5GiB", "512B".
func iec(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
