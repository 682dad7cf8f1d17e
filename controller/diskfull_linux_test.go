//go:build linux

package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestPrivilegedHalt_FullDataDiskIsUnavailable: a halt that cannot be
// written because the controller's data disk is full is reported as
// Unavailable (turbctl exit 6: retry once space is freed), not as an
// internal error (exit 1) as before (issue 13, item 8). The data
// directory is a 4 MiB tmpfs the test mounts on its own temporary
// directory and fills.
func TestPrivilegedHalt_FullDataDiskIsUnavailable(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	s := controllertest.NewServer(t, func(c *controller.Config) { c.DataDir = filepath.Join(dir, "data") })
	admin := s.AdminClient(t)

	// Fill the disk.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	_ = f.Close()

	// Halt and resume by turns, each a new write, until one fails: the
	// first may fit in pages the log store holds already. The failure
	// must say Unavailable.
	var last error
	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		id := fmt.Sprintf("full-disk-%d", i)
		var err error
		if i%2 == 0 {
			_, err = admin.Halt(ctx, &turbulencev1.HaltRequest{RequestId: id, Reason: "disk full test"})
		} else {
			_, err = admin.Resume(ctx, &turbulencev1.ResumeRequest{RequestId: id})
		}
		cancel()
		if err == nil {
			continue
		}
		last = err
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("write %d on a full data disk = %v, want Unavailable", i+1, err)
		}
		if i%2 == 0 {
			break // a halt failed, as wanted
		}
	}
	if last == nil {
		t.Fatal("200 writes fitted on the full tmpfs; the test could not fill the disk")
	}
	t.Logf("halt on a full data disk: %v", last)
}
