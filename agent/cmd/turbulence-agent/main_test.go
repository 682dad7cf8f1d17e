package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRunFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseRunFlags([]string{
		"--controller", "a:1,b:2", "--controller", "c:3",
		"--label", "rack=r1", "--label", "env=prod",
		"--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem", "--state-dir", "/tmp/s",
	}, io.Discard)
	if err != nil {
		t.Fatalf("parseRunFlags: %v", err)
	}
	if diff := cmp.Diff([]string{"a:1", "b:2", "c:3"}, cfg.Controllers); diff != "" {
		t.Errorf("controllers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"rack": "r1", "env": "prod"}, cfg.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if cfg.TLS.CA != "ca.pem" || cfg.TLS.Cert != "c.pem" || cfg.TLS.Key != "k.pem" || cfg.StateDir != "/tmp/s" {
		t.Errorf("cfg = %+v", cfg)
	}

	def, err := parseRunFlags(nil, io.Discard)
	if err != nil || len(def.Controllers) != 1 || def.Controllers[0] != "127.0.0.1:7420" {
		t.Errorf("default controllers = %v, %v, want [127.0.0.1:7420]", def.Controllers, err)
	}
}

func TestRun_UsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--label", "novalue"},
		{"--nope"},
		{"run", "extra"},
	} {
		var stderr bytes.Buffer
		if got := run(args, &stderr); got != exitUsage {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", args, got, exitUsage, stderr.String())
		}
	}
	// The hidden worker mode refuses a worker without a deadline.
	if got := run([]string{"worker", "cpu", "--fault-id", "f", "--cores", "1", "--load", "50"}, io.Discard); got != 2 {
		t.Errorf("run(worker without deadline) = %d, want 2", got)
	}
}
