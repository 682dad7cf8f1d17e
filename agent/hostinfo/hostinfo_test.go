package hostinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestFacts(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	meminfo := "MemTotal:        8000000 kB\nMemFree:  100 kB\n"
	if err := os.WriteFile(filepath.Join(root, "meminfo"), []byte(meminfo), 0o644); err != nil {
		t.Fatal(err)
	}
	f := Facts(root, "v-test")
	if f.GetMemoryBytes() != 8000000*1024 {
		t.Errorf("memory_bytes = %d, want %d", f.GetMemoryBytes(), 8000000*1024)
	}
	if f.GetOs() != runtime.GOOS || f.GetArch() != runtime.GOARCH || f.GetCpus() != uint32(runtime.NumCPU()) || f.GetAgentVersion() != "v-test" {
		t.Errorf("Facts = %v", f)
	}
	if runtime.GOOS == "linux" && f.GetKernel() == "" {
		t.Errorf("kernel release is empty on Linux")
	}
	if got := Facts(filepath.Join(root, "missing"), "").GetMemoryBytes(); got != 0 {
		t.Errorf("memory_bytes without meminfo = %d, want 0", got)
	}
}
