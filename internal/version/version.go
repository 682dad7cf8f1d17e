// Package version tells which build of Turbulence is running, from what
// the Go toolchain records in every binary (runtime/debug.ReadBuildInfo):
// the main module's version and, when the build ran in a checkout, the VCS
// revision. So `go build`, `go install` and `make build` all produce a
// binary that knows its version without anything set at link time.
//
// `make package` does set one (-ldflags -X …/internal/version.stamp=V),
// so that a packaged binary says the package's own version, the one
// dpkg and rpm show.
package version

import (
	"runtime/debug"
	"strings"
)

// Unknown is the version of a binary that carries no build information.
const Unknown = "unknown"

// stamp is the version `make package` gives the binaries it packages
// (Makefile, VERSION); empty in every other build.
var stamp string

// String returns the running binary's version: the package version it
// was stamped with, or else the module version
// ("v1.2.3", or "(devel)" for a build in a checkout), followed by the
// first 12 characters of the VCS revision and "+dirty" when the tree had
// uncommitted changes, e.g. "(devel) 1a2b3c4d5e6f+dirty".
func String() string {
	if stamp != "" {
		return stamp
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Unknown
	}
	return fromBuildInfo(info)
}

// fromBuildInfo formats info as String does.
func fromBuildInfo(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	// A pseudo-version already names the revision (v0.0.0-…-1a2b3c4d5e6f).
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if strings.HasSuffix(v, rev) {
		return v
	}
	if modified == "true" {
		rev += "+dirty"
	}
	return v + " " + rev
}

// Line is what `--version` prints for the binary called name:
// "turbulence-agent (devel) 1a2b3c4d5e6f go1.26.0".
func Line(name string) string {
	goVer := "go?"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVer = info.GoVersion
	}
	return name + " " + String() + " " + goVer
}
