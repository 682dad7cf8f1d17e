package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  string
		settings map[string]string
		want     string
	}{
		{"release", "v1.2.3", nil, "v1.2.3"},
		{"no version", "", nil, "(devel)"},
		{"checkout", "(devel)", map[string]string{"vcs.revision": "1a2b3c4d5e6f7a8b9c0d", "vcs.modified": "false"}, "(devel) 1a2b3c4d5e6f"},
		{"dirty checkout", "(devel)", map[string]string{"vcs.revision": "1a2b3c4d5e6f7a8b9c0d", "vcs.modified": "true"}, "(devel) 1a2b3c4d5e6f+dirty"},
		{"pseudo-version", "v0.0.0-20261203104100-1a2b3c4d5e6f", map[string]string{"vcs.revision": "1a2b3c4d5e6f7a8b9c0d"}, "v0.0.0-20261203104100-1a2b3c4d5e6f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := &debug.BuildInfo{Main: debug.Module{Version: tc.version}}
			for k, v := range tc.settings {
				info.Settings = append(info.Settings, debug.BuildSetting{Key: k, Value: v})
			}
			if got := fromBuildInfo(info); got != tc.want {
				t.Errorf("fromBuildInfo = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLine(t *testing.T) {
	got := Line("turbctl")
	if !strings.HasPrefix(got, "turbctl ") || !strings.Contains(got, String()) || !strings.Contains(got, " go") {
		t.Errorf("Line = %q, want name, version and Go version", got)
	}
}

// A binary that make package stamped says the package's version, whatever
// its build information says.
func TestString_StampWins(t *testing.T) {
	old := stamp
	t.Cleanup(func() { stamp = old })
	stamp = "9.8.7+test"
	if got := String(); got != "9.8.7+test" {
		t.Errorf("String() = %q, want the stamp 9.8.7+test", got)
	}
	if got := Line("turbctl"); !strings.HasPrefix(got, "turbctl 9.8.7+test go") {
		t.Errorf("Line = %q, want it to carry the stamp", got)
	}
}
