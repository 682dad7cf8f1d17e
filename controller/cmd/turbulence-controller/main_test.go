package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
)

// tlsArgs are the certificate flags every non-dev command line needs; the
// files are not read while parsing.
var tlsArgs = []string{"--ca", "ca.pem", "--cert", "c.pem", "--key", "c.key"}

func TestParseFlags_ClusterFormation(t *testing.T) {
	t.Parallel()
	peers := "c1=10.0.0.1:7421/10.0.0.1:7420,c2=10.0.0.2:7421/10.0.0.2:7420,c3=10.0.0.3:7421/10.0.0.3:7420"
	tests := []struct {
		name       string
		args       []string
		wantExpect int
		wantJoin   []string
		wantPeers  int
	}{
		{
			name:       "bootstrap-expect with a join list (commas and repeats)",
			args:       []string{"--node-id", "c1", "--bootstrap-expect", "3", "--join", "10.0.0.1:7420,10.0.0.2:7420", "--join", "10.0.0.3:7420"},
			wantExpect: 3,
			wantJoin:   []string{"10.0.0.1:7420", "10.0.0.2:7420", "10.0.0.3:7420"},
		},
		{
			name:       "bootstrap-expect with the other nodes only",
			args:       []string{"--node-id", "c1", "--bootstrap-expect", "3", "--join", "10.0.0.2:7420,10.0.0.3:7420"},
			wantExpect: 3,
			wantJoin:   []string{"10.0.0.2:7420", "10.0.0.3:7420"},
		},
		{
			name:       "bootstrap-expect with every peer",
			args:       []string{"--node-id", "c2", "--bootstrap-expect", "3", "--peer", peers},
			wantExpect: 3,
			wantPeers:  3,
		},
		{
			name:       "bootstrap-expect 1 is a single node",
			args:       []string{"--node-id", "c1", "--bootstrap-expect", "1"},
			wantExpect: 1,
		},
		{
			name:      "explicit bootstrap",
			args:      []string{"--node-id", "c3", "--bootstrap", "--peer", peers},
			wantPeers: 3,
		},
		{
			name:     "plain join",
			args:     []string{"--node-id", "c4", "--join", "10.0.0.1:7420"},
			wantJoin: []string{"10.0.0.1:7420"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			cfg, dev, code, ok := parseFlags(append(tt.args, tlsArgs...), &stderr)
			if !ok {
				t.Fatalf("parseFlags(%q) = exit %d, want ok; stderr:\n%s", tt.args, code, stderr.String())
			}
			if dev {
				t.Error("dev = true without --dev")
			}
			if cfg.BootstrapExpect != tt.wantExpect {
				t.Errorf("BootstrapExpect = %d, want %d", cfg.BootstrapExpect, tt.wantExpect)
			}
			if diff := cmp.Diff(tt.wantJoin, cfg.Join); diff != "" {
				t.Errorf("Join (-want +got):\n%s", diff)
			}
			if len(cfg.Peers) != tt.wantPeers {
				t.Errorf("Peers = %v, want %d", cfg.Peers, tt.wantPeers)
			}
		})
	}
}

func TestParseFlags_PeerAddresses(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	cfg, _, code, ok := parseFlags(append([]string{"--node-id", "a", "--bootstrap-expect", "2",
		"--peer", "a=127.0.0.1:1/127.0.0.1:2", "--peer", "b=[::1]:3/[::1]:4"}, tlsArgs...), &stderr)
	if !ok {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := []raftnode.Peer{
		{ID: "a", Address: raftnode.Address{Raft: "127.0.0.1:1", GRPC: "127.0.0.1:2"}},
		{ID: "b", Address: raftnode.Address{Raft: "[::1]:3", GRPC: "[::1]:4"}},
	}
	if diff := cmp.Diff(want, cfg.Peers); diff != "" {
		t.Errorf("Peers (-want +got):\n%s", diff)
	}
}

// Every bad command line is a usage error (exit 2) whose message names
// the flag and the limit, and nothing is started.
func TestParseFlags_UsageErrors(t *testing.T) {
	t.Parallel()
	peers3 := "c1=10.0.0.1:7421/10.0.0.1:7420,c2=10.0.0.2:7421/10.0.0.2:7420,c3=10.0.0.3:7421/10.0.0.3:7420"
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"negative count", []string{"--bootstrap-expect", "-1", "--join", "a:1"}, "bootstrap-expect -1: must be between 1 and 7"},
		{"count above the limit", []string{"--bootstrap-expect", "9", "--join", "a:1"}, "bootstrap-expect 9: must be between 1 and 7"},
		{"not a number", []string{"--bootstrap-expect", "three"}, "invalid value \"three\" for flag -bootstrap-expect"},
		{"no addresses", []string{"--bootstrap-expect", "3"}, "bootstrap-expect 3: join names 0 addresses; give the gRPC addresses of the other 2"},
		{"too few join addresses", []string{"--bootstrap-expect", "3", "--join", "a:1"}, "join names 1 addresses"},
		{"too many join addresses", []string{"--bootstrap-expect", "3", "--join", "a:1,b:1,c:1,d:1"}, "join names 4 addresses; give the gRPC addresses of the other 2 initial controllers (this node's own may be included, so at most 3)"},
		{"peer count differs", []string{"--node-id", "c1", "--bootstrap-expect", "5", "--peer", peers3}, "bootstrap-expect 5: peers name 3 servers; give all 5"},
		{"peers and join", []string{"--node-id", "c1", "--bootstrap-expect", "3", "--peer", peers3, "--join", "a:1,b:1"}, "peers or join, not both"},
		{"with --bootstrap", []string{"--node-id", "c1", "--bootstrap", "--bootstrap-expect", "3", "--peer", peers3}, "bootstrap and bootstrap-expect exclude each other"},
		{"self not among peers", []string{"--node-id", "c9", "--bootstrap-expect", "3", "--peer", peers3}, `this node's ID "c9" is not among the 3 peers`},
		{"peers without a bootstrap flag", []string{"--node-id", "c1", "--peer", peers3}, "peers are only used with bootstrap or bootstrap-expect"},
		{"peer without gRPC address", []string{"--bootstrap-expect", "1", "--peer", "c1=10.0.0.1:7421"}, "the gRPC address is required"},
		{"stray argument", []string{"--bootstrap-expect", "1", "extra"}, "unexpected arguments"},
		{"election timeout too short", []string{"--bootstrap-expect", "1", "--raft-election-timeout", "50ms"}, "raft election timeout 50ms: must be between 100ms and 10s"},
		{"election timeout too long", []string{"--bootstrap-expect", "1", "--raft-election-timeout", "1m"}, "raft election timeout 1m0s: must be between 100ms and 10s"},
		{"group percent above 100", []string{"--bootstrap-expect", "1", "--max-group-percent", "150"}, "max group percent: 150 is not in [0, 100]"},
		{"group agents above the bound", []string{"--bootstrap-expect", "1", "--max-group-agents", "6000"}, "max group agents: 6000 is not in [0, 5000]"},
		{"host metrics window above the bound", []string{"--bootstrap-expect", "1", "--host-metrics-window", "2h"}, "host metrics window: 2h0m0s is not in [0, 1h0m0s] (3600 samples at the 1s heartbeat interval"},
		{"negative host metrics window", []string{"--bootstrap-expect", "1", "--host-metrics-window", "-1s"}, "host metrics window: -1s is not in"},
		{"ended faults kept too briefly", []string{"--bootstrap-expect", "1", "--retain-ended-faults", "10s"}, "retain-ended-faults: 10s is not in [1m0s, 8784h0m0s]"},
		{"ended faults kept too long", []string{"--bootstrap-expect", "1", "--retain-ended-faults", "9000h"}, "retain-ended-faults: 9000h0m0s is not in [1m0s, 8784h0m0s]"},
		{"negative ended fault count", []string{"--bootstrap-expect", "1", "--max-ended-faults", "-1"}, "max-ended-faults: -1 is not in [1, 10000000]"},
		{"ended fault count above the bound", []string{"--bootstrap-expect", "1", "--max-ended-faults", "20000000"}, "max-ended-faults: 20000000 is not in [1, 10000000]"},
		{"departed agents kept too briefly", []string{"--bootstrap-expect", "1", "--retain-departed-agents", "20m"}, "retain-departed-agents: 20m0s is not in [1h0m0s, 8784h0m0s]"},
		{"negative heartbeat rate", []string{"--bootstrap-expect", "1", "--max-heartbeat-rate", "-5"}, "max heartbeat rate: -5 is not in [0, 1000000] heartbeats a second (0 means the default, 2000)"},
		{"heartbeat rate above the bound", []string{"--bootstrap-expect", "1", "--max-heartbeat-rate", "2000000"}, "max heartbeat rate: 2000000 is not in [0, 1000000]"},
		{"pprof without a metrics listener", []string{"--bootstrap-expect", "1", "--pprof"}, "--pprof serves on the metrics listener; it needs --metrics-addr"},
		{"prune interval too short", []string{"--bootstrap-expect", "1", "--prune-interval", "10ms"}, "prune-interval: 10ms is not in [1s, 1h0m0s]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			_, _, code, ok := parseFlags(append(tt.args, tlsArgs...), &stderr)
			if ok || code != exitUsage {
				t.Fatalf("parseFlags(%q) = ok %v, exit %d; want exit %d", tt.args, ok, code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestParseFlags_DevNeedsNoCertificatesButChecksTheRest(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	cfg, dev, _, ok := parseFlags([]string{"--dev"}, &stderr)
	if !ok || !dev || cfg.DataDir != devDataDir {
		t.Errorf("--dev: ok %v dev %v data dir %q; want ok, dev, %q (stderr %q)", ok, dev, cfg.DataDir, devDataDir, stderr.String())
	}
	stderr.Reset()
	if _, _, code, ok := parseFlags([]string{"--dev", "--bootstrap-expect", "3"}, &stderr); ok || code != exitUsage {
		t.Errorf("--dev --bootstrap-expect 3 without addresses: ok %v exit %d; want a usage error", ok, code)
	}
	stderr.Reset()
	if _, _, code, ok := parseFlags([]string{"--bootstrap-expect", "1"}, &stderr); ok || code != exitUsage || !strings.Contains(stderr.String(), "--ca, --cert and --key are required") {
		t.Errorf("no certificates: ok %v exit %d stderr %q; want the certificate usage error", ok, code, stderr.String())
	}
}

func TestRun_UsageErrorExitsTwo(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := run(append([]string{"--bootstrap-expect", "4", "--join", "a:1"}, tlsArgs...), &stderr); code != exitUsage {
		t.Errorf("run = %d, want %d (stderr %q)", code, exitUsage, stderr.String())
	}
}
