//go:build !turbulence_testhooks

package agent

// testHooks installs what a test build adds to a running agent
// (testhooks_on.go); release builds add nothing.
func testHooks(*Agent) {}
