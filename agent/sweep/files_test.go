package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// fakeMounts writes a mountinfo fixture listing the given mount points
// and returns its proc root.
func fakeMounts(t *testing.T, points ...string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	var info string
	for i, p := range points {
		info += fmt.Sprintf("%d 1 0:%d / %s rw,relatime shared:1 - ext4 /dev/vdb rw\n", 100+i, 50+i, p)
	}
	info += "200 1 0:99 / /proc rw - proc proc rw\n"
	if err := os.WriteFile(filepath.Join(root, "self", "mountinfo"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFiles_RemovesOwnMarkedDirsOnly(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	mine, err := CreateMarkedDir(mnt, Mark{Prefix: FillDirPrefix, FaultID: "f-1", Owner: "/var/lib/turbulence"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "fill"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	theirs, err := CreateMarkedDir(mnt, Mark{Prefix: IODirPrefix, FaultID: "f-2", Owner: "/other/agent"})
	if err != nil {
		t.Fatal(err)
	}
	// Looks like ours by name, but holds files and no marker: never touched.
	unmarked := filepath.Join(mnt, FillDirPrefix+"f-3")
	if err := os.Mkdir(unmarked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unmarked, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A crash between mkdir and the marker: an empty directory is left to
	// its own agent's journal (the sweep cannot tell whose it is).
	torn := filepath.Join(mnt, IODirPrefix+"f-4")
	if err := os.Mkdir(torn, 0o700); err != nil {
		t.Fatal(err)
	}
	proc := fakeMounts(t, mnt, filepath.Join(mnt, "not-mounted-anymore"))

	var removed, foreign []string
	for _, prefix := range []string{FillDirPrefix, IODirPrefix} {
		r, f, err := Files(proc, "/var/lib/turbulence", prefix, nil)
		if err != nil {
			t.Fatalf("Files(%s): %v", prefix, err)
		}
		removed, foreign = append(removed, r...), append(foreign, f...)
	}
	slices.Sort(removed)
	if want := []string{mine}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if len(foreign) != 3 {
		t.Errorf("foreign = %q, want the other owner's, the unmarked and the torn directory", foreign)
	}
	for _, d := range []string{theirs, unmarked, torn} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was touched: %v", d, err)
		}
	}
	// Idempotent.
	if again, _, err := Files(proc, "/var/lib/turbulence", FillDirPrefix, nil); err != nil || len(again) != 0 {
		t.Errorf("second sweep = %v, %v; want nothing", again, err)
	}
}

func TestRemoveMarkedDir_RefusesOthersAndIsIdempotent(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	d, err := CreateMarkedDir(mnt, Mark{Prefix: FillDirPrefix, FaultID: "../../etc", Owner: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(d) != mnt {
		t.Fatalf("fault ID escaped the mount root: %s", d)
	}
	if _, err := CreateMarkedDir(mnt, Mark{Prefix: FillDirPrefix, FaultID: "../../etc", Owner: "/a"}); err == nil {
		t.Error("a second directory for the same fault was made")
	}
	if err := RemoveMarkedDir(d, "/b"); !errors.Is(err, ErrNotOurs) {
		t.Errorf("remove by another owner: %v, want ErrNotOurs", err)
	}
	if err := RemoveMarkedDir(d, "/a"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveMarkedDir(d, "/a"); err != nil {
		t.Errorf("second remove: %v, want nil", err)
	}
	if err := RemoveMarkedDir(mnt, "/a"); !errors.Is(err, ErrNotOurs) {
		t.Errorf("remove of an unmarked directory: %v, want ErrNotOurs", err)
	}
}

// TestFiles_PlantedMarkersNeverBlock: directories anyone could plant at a
// mount root, with a marker that is a FIFO (opening it would wait for a
// writer for ever) or a symbolic link to another agent's marker, are
// reported as foreign at once and left alone (invariant 7: a mark that
// cannot be read never blocks an agent).
func TestFiles_PlantedMarkersNeverBlock(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	fifo := filepath.Join(mnt, FillDirPrefix+"fifo")
	if err := os.Mkdir(fifo, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(fifo, MarkerName), 0o600); err != nil {
		t.Fatal(err)
	}
	mine, err := CreateMarkedDir(mnt, Mark{Prefix: FillDirPrefix, FaultID: "f-real", Owner: "/var/lib/turbulence"})
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(mnt, FillDirPrefix+"link")
	if err := os.Mkdir(link, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(mine, MarkerName), filepath.Join(link, MarkerName)); err != nil {
		t.Fatal(err)
	}
	proc := fakeMounts(t, mnt)
	removed, foreign, err := Files(proc, "/var/lib/turbulence", FillDirPrefix, []string{"f-real"})
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	if len(removed) != 0 || len(foreign) != 2 {
		t.Errorf("removed %q, foreign %q; want nothing removed and the two planted directories foreign", removed, foreign)
	}
	for _, d := range []string{fifo, link, mine} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was touched: %v", d, err)
		}
	}
}
