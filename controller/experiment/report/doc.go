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
package report
