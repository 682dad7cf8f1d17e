// Package probe measures an experiment's steady state: an HTTP check, a
// Prometheus instant query against a real Prometheus HTTP API, the
// remaining error budget and its burn rate, and the targets' own host
// metrics as their agents report them.
//
// Every probe is a Prober: the experiment runner calls Sample every
// Interval and gets back one Sample — the value measured, whether it
// passed, and if not, why. A probe never returns an error from Sample:
// an unreachable server, a timeout or a query that returns nothing is a
// failing sample with its reason in Err, because to an experiment "cannot
// tell" must count as "not steady" (docs/probes.md).
//
// Probers are built from the experiment file's types
// (controller/experiment) by New and NewHost; each checks its spec again
// and names the field and the limit of anything wrong, so that a bad
// probe is refused before an experiment starts rather than failing every
// sample once it runs. CheckQuery asks a Prometheus server whether a
// query parses, for `turbctl experiment validate`.
//
// Concurrency: a Prober may be sampled from several goroutines at once;
// it keeps no state between samples beyond its spec.
//
// Network hygiene: the probes' HTTP clients take no proxy from the
// environment, follow at most MaxRedirects redirects, read at most
// MaxBodyBytes of an answer, and keep no idle connection between samples
// (each sample dials afresh, so a forgotten prober holds no socket and
// its latency is that of a new client).
package probe
