// Package chaos is chaos on Turbulence itself (DESIGN.md, testing level
// 4): real turbulence-controller processes, each in a network namespace
// the test makes (addresses from 198.18.0.0/15 only), killed with SIGKILL
// and partitioned with nftables while clients keep writing, with the
// safety properties checked and the timings reported.
//
// The tests are privileged (TestPrivileged…, internal/testutil.
// RequirePrivileged) and Linux-only; the package has nothing else.
package chaos
