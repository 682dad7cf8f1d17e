package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binaries are turbulence-controller and turbulence-agent built once from
// this checkout for every test of the package; TestMain removes them.
var binaries struct {
	once sync.Once
	dir  string
	out  []byte
	err  error
}

// buildBinaries builds both daemons (once) and returns their paths.
func buildBinaries(t *testing.T) (controller, agent string) {
	t.Helper()
	binaries.once.Do(func() {
		// go test puts its own GOROOT/bin first in PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			binaries.err = err
			return
		}
		if binaries.dir, binaries.err = os.MkdirTemp("", "turbulence-chaos-bin-"); binaries.err != nil {
			return
		}
		cmd := exec.Command(goBin, "build", "-o", binaries.dir+string(filepath.Separator),
			"./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent")
		cmd.Dir = filepath.Join("..", "..") // the module root, from test/chaos
		binaries.out, binaries.err = cmd.CombinedOutput()
	})
	if binaries.err != nil {
		t.Fatalf("go build turbulence-controller and turbulence-agent: %v\n%s", binaries.err, binaries.out)
	}
	return filepath.Join(binaries.dir, "turbulence-controller"), filepath.Join(binaries.dir, "turbulence-agent")
}

// removeBinaries deletes what buildBinaries built.
func removeBinaries() {
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
}
