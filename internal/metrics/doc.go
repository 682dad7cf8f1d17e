// Package metrics is what the daemons share for their Prometheus
// exposition: a registry with the standard process_* and go_*
// collectors (NewRegistry), collectors whose samples are read at scrape
// time from state kept elsewhere (GaugeFunc, CounterFunc), the
// certificate expiry gauge, the mapping of free-text fault end reasons
// to a bounded label set (EndReason), and Serve, the HTTP endpoint that
// offers a registry on GET /metrics and nothing else.
//
// The exposition is prometheus/client_golang's, the ecosystem's
// standard: its histograms, its runtime and process collectors, and the
// content negotiation scrapers expect come with it, and hashicorp/raft's
// own metrics reach it through go-metrics' Prometheus sink
// (controller/raftmetrics.go). An earlier hand-written text registry
// served a handful of gauges; histograms and the runtime collectors
// outgrew it.
//
// Values the daemons already keep (the faults held, raft's last index,
// the certificate in use, the refusals counted) are read at scrape time
// through GaugeFunc and CounterFunc rather than copied into shadow
// gauges on every change: the numbers live in one place and a scrape
// cannot see a copy that missed an update. Counters and histograms of
// events (faults ended, apply latency, sessions ended) are counted where
// the event happens, since nothing else keeps them.
//
// The endpoint is optional and off by default: the agent listens on no
// TCP port unless --metrics-addr is given (docs/design.md, issue 7; proved by
// test/e2e/ports_test.go). It serves plain HTTP with no authentication,
// as node_exporter does by default, so it should be bound to loopback or
// a management network: what it tells (fault counts, certificate expiry,
// leadership) is operational, not secret, and it accepts no input.
package metrics
