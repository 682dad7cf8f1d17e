// Package testutil holds helpers for tests only: gating privileged tests
// and polling for a condition instead of sleeping. It is imported only by
// _test.go files and by test/ (test/deps_test.go enforces that).
package testutil
