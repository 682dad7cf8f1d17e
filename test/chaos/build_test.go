package chaos

import (
	"os"
	"sync"
	"testing"

	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// binaries are turbulence-controller and turbulence-agent built once from
// this checkout for every test of the package; TestMain removes them.
var binaries struct {
	once  sync.Once
	dir   string
	paths []string
}

// buildBinaries builds both daemons (once) and returns their paths.
func buildBinaries(t *testing.T) (controller, agent string) {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "turbulence-chaos-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binaries.dir = dir
		binaries.paths = testbuild.BuildBinaries(t, dir, "./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent")
	})
	if len(binaries.paths) != 2 {
		t.Fatal("turbulence-controller and turbulence-agent were not built (see the first test's failure)")
	}
	return binaries.paths[0], binaries.paths[1]
}

// removeBinaries deletes what buildBinaries built.
func removeBinaries() {
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
}
