package procfs

import (
	"os"
	"slices"
	"testing"
)

func TestParseStat_CommandWithSpacesAndParens(t *testing.T) {
	line := "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 987654 1000 10 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{State: 'S', PPID: 17, CPUTicks: 300, StartTicks: 987654}
	if st != want {
		t.Errorf("ParseStat = %+v, want %+v", st, want)
	}
}

func TestParseStat_Malformed(t *testing.T) {
	for _, line := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S notanumber 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5"} {
		if _, err := ParseStat([]byte(line)); err == nil {
			t.Errorf("ParseStat(%q) = nil error", line)
		}
	}
}

func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs Linux /proc")
	}
	pid := os.Getpid()
	st, err := ReadStat("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.StartTicks == 0 {
		t.Errorf("ReadStat(self) = %+v; want ppid %d and a start time", st, os.Getppid())
	}
	args, err := Cmdline("/proc", pid)
	if err != nil || !slices.Equal(args, os.Args) {
		t.Errorf("Cmdline(self) = %q, %v; want %q", args, err, os.Args)
	}
	pids, err := PIDs("/proc")
	if err != nil || !slices.Contains(pids, pid) {
		t.Errorf("PIDs does not list self (%d): %v", pid, err)
	}
}

func TestParseCPUTimes(t *testing.T) {
	data := "cpu  100 20 30 400 50 6 7 8 0 0\ncpu0 50 10 15 200 25 3 3 4 0 0\ncpu1 50 10 15 200 25 3 4 4 0 0\nintr 1 2 3\n"
	ct, err := ParseCPUTimes([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUTimes{Busy: 100 + 20 + 30 + 6 + 7 + 8, Total: 621, CPUs: 2}
	if ct != want {
		t.Errorf("ParseCPUTimes = %+v, want %+v", ct, want)
	}
	if _, err := ParseCPUTimes([]byte("intr 1\n")); err == nil {
		t.Error("ParseCPUTimes without a cpu line succeeded")
	}
	if _, err := ParseCPUTimes([]byte("cpu 1 2 x 4 5 6 7 8\n")); err == nil {
		t.Error("ParseCPUTimes with a bad number succeeded")
	}
}
