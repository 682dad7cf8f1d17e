package disk

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkFill measures how fast a fill takes space (GiB/s) and how long
// its revert takes to give it all back, for 1 GiB and 10 GiB, on an ext4
// image (fallocate) and on tmpfs (pages allocated). Sizes that do not fit
// in the machine's free space are skipped with a message.
func BenchmarkFill(b *testing.B) {
	for _, size := range []uint64{1 << 30, 10 << 30} {
		for _, fs := range []string{"ext4", "tmpfs"} {
			b.Run(fmt.Sprintf("%s/%dGiB", fs, size>>30), func(b *testing.B) {
				need := size + size/4
				if fs == "ext4" {
					if sp, _, err := statSpace(os.TempDir()); err != nil || sp.Avail < need {
						b.Skipf("an ext4 image for %s needs %s free in %s; %s available", iec(size), iec(need), os.TempDir(), iec(sp.Avail))
					}
				} else if free := memAvailable(b); free < need+2<<30 {
					b.Skipf("a tmpfs fill of %s needs %s of available memory; %s available", iec(size), iec(need+2<<30), iec(free))
				}
				var fillTime, revertTime time.Duration
				for b.Loop() {
					b.StopTimer()
					var mnt string
					if fs == "ext4" {
						mnt = mountExt4(b, int64(need))
					} else {
						mnt = mountTmpfs(b, need, 0)
					}
					before := avail(b, mnt).Avail
					in := NewFill("/proc", inject.NewOwner("", b.TempDir()), testPolicy(0, 1))
					b.StartTimer()
					start := time.Now()
					h, err := in.Apply(context.Background(), fillFault("f-bench", &turbulencev1.DiskFillSpec{Path: mnt, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: size}}), time.Now().Add(time.Hour))
					if err != nil {
						b.Fatal(err)
					}
					fillTime += time.Since(start)
					start = time.Now()
					if err := h.Revert(context.Background()); err != nil {
						b.Fatal(err)
					}
					revertTime += time.Since(start)
					if got := avail(b, mnt).Avail; got != before {
						b.Errorf("available %d after revert, %d before", got, before)
					}
				}
				n := float64(b.N)
				b.ReportMetric(float64(size)/(1<<30)/(fillTime.Seconds()/n), "GiB/s")
				b.ReportMetric(float64(revertTime.Milliseconds())/n, "revert-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable(tb testing.TB) uint64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	var kb uint64
	for _, line := range strings.Split(string(data), "\n") {
		if _, err := fmt.Sscanf(line, "MemAvailable: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// BenchmarkIOAccuracy measures how close the I/O load comes to its target
// at three rates, on tmpfs and on an ext4 image with direct I/O: the error
// of the measured IOPS, in percent of the target, over a 3 s window after
// the settle time.
func BenchmarkIOAccuracy(b *testing.B) {
	for _, fs := range []string{"tmpfs", "ext4"} {
		for _, iops := range []uint32{500, 2000, 8000} {
			b.Run(fmt.Sprintf("%s/%dIOPS", fs, iops), func(b *testing.B) {
				var worst, sum float64
				for b.Loop() {
					var mnt string
					if fs == "ext4" {
						mnt = mountExt4(b, 256<<20)
					} else {
						mnt = mountTmpfs(b, 128<<20, 0)
					}
					in := NewIO(selfBinary(b), "/proc", inject.NewOwner("", b.TempDir()), testPolicy(0, 5), WithScratchBytes(32<<20))
					hd, err := in.Apply(context.Background(), ioFault("f-bench", &turbulencev1.DiskIOSpec{Path: mnt,
						Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_MIXED, Iops: iops, Workers: 2, Direct: fs == "ext4"}), time.Now().Add(time.Minute))
					if err != nil {
						b.Fatal(err)
					}
					h := hd.(*ioHandle)
					st := settledRate(b, h)
					e := errPercent(st.GetDisk().GetMeasuredIops(), float64(iops))
					worst, sum = max(worst, e), sum+e
					if err := h.Revert(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(sum/float64(b.N), "err-%")
				b.ReportMetric(worst, "worst-err-%")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
