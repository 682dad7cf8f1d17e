// Package e2e runs the whole product in one test process: a real one-node
// raft controller over mutual TLS (controller/controllertest), a real agent
// whose workers are this test binary re-executed, and turbctl driven through
// its entry point. It holds the end-to-end tests of the walking skeleton and
// the benchmarks of apply latency and deadline lateness.
package e2e
