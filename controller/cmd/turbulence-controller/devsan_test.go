package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestParseFlags_DevSAN: --dev-san takes IP addresses and DNS names,
// repeated or comma-separated; a malformed one, or --dev-san without
// --dev, is a usage error that names the flag and the value.
func TestParseFlags_DevSAN(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	_, dev, sans, _, ok := parseFlagsDev([]string{"--dev", "--dev-san", "198.18.0.1,ctl.example", "--dev-san", "fd00:198:18::1"}, &stderr)
	if !ok || !dev || strings.Join(sans, " ") != "198.18.0.1 ctl.example fd00:198:18::1" {
		t.Errorf("--dev-san: ok %v dev %v sans %q; stderr %q", ok, dev, sans, stderr.String())
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--dev", "--dev-san", "ctl_1.example"}, `invalid value "ctl_1.example" for flag -dev-san`},
		{[]string{"--dev", "--dev-san", "198.18.0.1,"}, "empty name"},
		{[]string{"--dev", "--dev-san", "-ctl.example"}, "not allowed there"},
		{[]string{"--dev-san", "198.18.0.1", "--ca", "a", "--cert", "b", "--key", "c"}, "it needs --dev"},
	} {
		stderr.Reset()
		if _, _, _, code, ok := parseFlagsDev(tt.args, &stderr); ok || code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("parseFlagsDev(%q) = ok %v exit %d, stderr %q; want a usage error with %q", tt.args, ok, code, stderr.String(), tt.want)
		}
	}
}
