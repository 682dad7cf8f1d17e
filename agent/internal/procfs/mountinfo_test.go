package procfs

import "testing"

func TestParseMountInfo_AndMountOf(t *testing.T) {
	t.Parallel()
	data := []byte(`22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /mnt/my\040disk ro,nosuid master:3 - tmpfs tmpfs rw,size=64k
31 22 0:27 / /var rw - xfs /dev/vdb rw
32 31 0:28 /sub /var/lib rw - xfs /dev/vdb rw
33 31 0:29 / /var/lib rw - tmpfs over rw
`)
	ms, err := ParseMountInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 || ms[1].MountPoint != "/mnt/my disk" || !ms[1].ReadOnly() || ms[1].FSType != "tmpfs" || ms[3].Root != "/sub" {
		t.Fatalf("parsed %+v", ms)
	}
	for path, want := range map[string]int{"/": 22, "/etc": 22, "/var": 31, "/variable": 22, "/var/lib/pg": 33, "/mnt/my disk/x": 30} {
		m, ok := MountOf(ms, path)
		if !ok || m.ID != want {
			t.Errorf("MountOf(%q) = %d, want %d", path, m.ID, want)
		}
	}
	if _, err := ParseMountInfo([]byte("1 2 3\n")); err == nil {
		t.Error("a short line parsed")
	}
}

func TestParseIO(t *testing.T) {
	t.Parallel()
	got, err := ParseIO([]byte("rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"))
	if err != nil || got != (IO{RChar: 10, WChar: 20, SyscR: 3, SyscW: 4}) {
		t.Errorf("ParseIO = %+v, %v", got, err)
	}
	if _, err := ParseIO([]byte("rchar: 1\n")); err == nil {
		t.Error("ParseIO of a partial file succeeded")
	}
}
