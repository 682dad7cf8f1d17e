// Package report is the record an experiment leaves behind and its three
// renderings: JSON for scripts, a compact text summary for a terminal,
// and one self-contained HTML page with SVG charts for people to look at
// (docs/experiments.md describes experiments; docs/experiment-report.png
// shows the page).
//
// The model, Report, is plain data: the runner fills it from the
// experiment's state, and the renderers only read it. It depends on
// nothing but the standard library (and internal/termsafe for the
// terminal), so that turbctl, the controller and tests can all build one
// without pulling in raft or gRPC.
//
// The HTML page fetches nothing: CSS is inline, charts are SVG drawn here
// in Go, there is no script, and every string that came from the report
// (names, probe errors, event text, all of which a user or a remote
// server may have written) goes through html/template's escaping. A
// report saved from an incident can be opened offline, mailed, or
// attached to a ticket and will look the same.
//
// # Filling a report
//
// The runner owns the facts; this package only shows them. What the
// renderers read, so that the runner knows what to fill:
//
//   - State, the three verdicts and, for ABORTED, Abort: the probe, its
//     value and the failing sample's time (SampleAt), or At for an abort
//     by hand or by halt, and RevertedAt once every fault's end is
//     confirmed. RevertedAt stays zero while an agent is silent.
//   - Steps: the planned place on the timeline, the group, and the
//     actual Start and End; a zero End is shown as unknown ("?"), never
//     as an end, and the step's window is shaded to the end of the
//     charts.
//   - Probes: every sample kept, NaN for "nothing measured", Err on any
//     failure, Dropped for the samples the controller did not keep.
//   - Hosts: per chosen agent, the host metrics over the run, keyed by
//     the metric names of the heartbeats.
//   - Events in time order, with Type "abort" or "failed" for alarms.
//
// Validate says, field by field, where a report does not agree with
// itself. Example returns a complete report of an aborted run, for tests
// here and in the runner.
//
// # Rendering choices
//
// Charts share one time axis, from the start to the end of the run, so
// that fault windows line up down the page. Value axes start at zero for
// values that are never negative and span 0..100 for percentages, so
// that a small change does not look like a cliff. A line keeps at most
// four points per pixel column (first, lowest, highest, last): long
// runs keep their spikes and the page stays small. Times are offsets
// from the start ("+41.8s") everywhere but the header, which gives the
// start as an absolute UTC time.
package report
