package fleetsim

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// certValidity is the lifetime of a simulated agent's certificate: longer
// than tlsutil.ExpiryWarning, so that no agent logs "expires soon".
const certValidity = 30 * 24 * time.Hour

// mint issues one agent certificate per name, signed by ca, into dir as
// agent-<name>.crt and .key, on every CPU at once. Each certificate has
// its own P-256 key, as each host of a fleet has: on the 2-core
// development machine (BenchmarkMint, docs/fleetsim.md) a key takes about
// 25 µs of a certificate's 340 µs in memory (tmpfs) and of its 2.5 ms on
// disk, where the two files dominate; a pool of shared keys would save
// less than a tenth and make the simulation less like a fleet.
func mint(ca *tlsutil.CA, caFile, dir string, names []string) ([]tlsutil.Files, error) {
	out := make([]tlsutil.Files, len(names))
	errs := make([]error, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				leaf := tlsutil.Leaf{Identity: tlsutil.Identity{Role: tlsutil.RoleAgent, Name: names[i]}, Validity: certValidity}
				out[i], errs[i] = ca.IssueFiles(dir, "agent-"+names[i], caFile, leaf)
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("fleetsim: certificate for %s: %w", names[i], err)
		}
	}
	return out, nil
}
