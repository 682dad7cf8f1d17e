// Package test holds the repository-wide tests that look at the module as
// a whole rather than at one package: the dependency-direction rules of
// docs/style.md, dependency rules and the rule that every package carries a doc comment
// (§5.9). They run `go list` from the module root and need nothing else.
// Subdirectories hold the cluster harness and the integration, chaos and
// lab tests.
package test
