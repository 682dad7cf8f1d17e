// Package metrics is the Prometheus exposition of the daemons: a small
// registry of gauges and counters written in the text format (version
// 0.0.4), and Serve, the HTTP endpoint that offers it on GET /metrics and
// nothing else.
//
// Why not prometheus/client_golang: Turbulence exposes a handful of
// gauges, all computed at scrape time from state the daemons already keep
// (the certificate in use, the faults held, raft's last index). The
// client library would bring five modules (client_model, common, procfs,
// perks, xxhash) and a protobuf exposition path for that; the text format
// is a page of code and is tested here against its specification
// (escaping, HELP/TYPE lines, sorted and stable output). If histograms or
// the Go runtime collectors are ever wanted, switching is local to this
// package and its callers' registration lines.
//
// Values are read at scrape time (GaugeFunc, Registry.OnScrape) rather
// than pushed on every change: the numbers live in one place (the inject
// Manager, the raft node, the TLS reloaders) and a scrape cannot see a
// gauge that missed an update.
//
// The endpoint is optional and off by default: the agent listens on no
// TCP port unless --metrics-addr is given (docs/design.md, issue 7; proved by
// test/e2e/ports_test.go). It serves plain HTTP with no authentication,
// as node_exporter does by default, so it should be bound to loopback or
// a management network: what it tells (fault counts, certificate expiry,
// leadership) is operational, not secret, and it accepts no input.
package metrics
