package worker

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func validDiskIO() DiskIOSpec {
	return DiskIOSpec{FaultID: "f-io", File: "/mnt/.turbulence-io-f-io/scratch", FileBytes: 1 << 20, Mode: DiskIOMixed,
		BytesPerSecond: 8 << 20, IOPS: 1000, BlockSize: 4096, Workers: 2, Direct: true,
		Deadline: time.Unix(0, time.Now().Add(time.Minute).UnixNano()), Nice: 5}
}

func TestDiskIOSpec_RoundTrip(t *testing.T) {
	t.Parallel()
	s := validDiskIO()
	args := s.Args()
	if args[0] != "disk-io" {
		t.Fatalf("argv starts with %q", args[0])
	}
	got, err := ParseDiskIOArgs(args[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip = %+v, want %+v", got, s)
	}
	if r := s.OpsPerSecond(); r != 1000 {
		t.Errorf("OpsPerSecond = %v, want the tighter target 1000 (8MiB/s of 4KiB is 2048)", r)
	}
}

func TestDiskIOSpec_RefusesFilesOutsideItsMarkedDirectory(t *testing.T) {
	t.Parallel()
	for file, want := range map[string]string{
		"/etc/passwd":                       "must be scratch in a .turbulence-io-* directory",
		"/mnt/.turbulence-fill-x/scratch":   "must be scratch in a .turbulence-io-* directory",
		"relative/.turbulence-io-x/scratch": "clean absolute path",
		"/mnt/.turbulence-io-x/../scratch":  "clean absolute path",
	} {
		s := validDiskIO()
		s.File = file
		if err := s.Validate(time.Now()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--file %s: %v, want %q", file, err, want)
		}
	}
	s := validDiskIO()
	s.Mode, s.BlockSize, s.Workers = "both", 1000, 0
	err := s.Validate(time.Now())
	for _, want := range []string{"--mode", "--block-size", "--workers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}
