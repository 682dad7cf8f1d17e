package fleetsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// mintBatch is how many certificates one op of BenchmarkMint makes.
const mintBatch = 200

// BenchmarkMint measures what a simulated agent's certificate costs, to
// decide whether a pool of shared keys is worth it: "key" is P-256 key
// generation alone, "cert-disk" and "cert-memory" a whole certificate
// (its key, the CA's signature, PEM, two files) written to the disk or
// to /dev/shm, one goroutine; "fleet-memory" is mint as Start runs it,
// on every CPU. Figures per certificate.
func BenchmarkMint(b *testing.B) {
	ca, certPEM, _, err := tlsutil.NewCA("fleetsim bench CA", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(b.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	names := make([]string, mintBatch)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
	}
	perCert := func(b *testing.B, start time.Time, n int) {
		b.ReportMetric(float64(time.Since(start).Microseconds())/float64(n), "us/cert")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("key", func(b *testing.B) {
		start, n := time.Now(), 0
		for b.Loop() {
			for range mintBatch {
				if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		perCert(b, start, n)
	})
	for _, where := range []string{"disk", "memory"} {
		b.Run("cert-"+where, func(b *testing.B) {
			dir := b.TempDir()
			if where == "memory" {
				if dir, err = os.MkdirTemp(tempBase(), "fleetsim-bench-"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = os.RemoveAll(dir) })
			}
			start, n := time.Now(), 0
			for b.Loop() {
				for _, name := range names {
					leaf := tlsutil.Leaf{Identity: tlsutil.Identity{Role: tlsutil.RoleAgent, Name: name}, Validity: certValidity}
					if _, err := ca.IssueFiles(dir, name, caFile, leaf); err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			perCert(b, start, n)
		})
	}
	b.Run("fleet-memory", func(b *testing.B) {
		start, n := time.Now(), 0
		for b.Loop() {
			dir, err := os.MkdirTemp(tempBase(), "fleetsim-bench-")
			if err != nil {
				b.Fatal(err)
			}
			_, err = mint(ca, caFile, dir, names)
			_ = os.RemoveAll(dir)
			if err != nil {
				b.Fatal(err)
			}
			n += len(names)
		}
		perCert(b, start, n)
	})
}
