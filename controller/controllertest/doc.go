// Package controllertest starts real controllers for tests: real raft
// with boltdb in a temporary directory, real mutual TLS with a fresh dev
// PKI, and ":0" listeners, so tests in any package (the end-to-end tests
// among them) exercise the same code paths as production.
package controllertest
