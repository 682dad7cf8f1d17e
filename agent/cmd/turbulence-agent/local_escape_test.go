package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/localapi"
)

// TestPrintStatus_EscapesTerminalControls is finding 6 of issue 13 on the
// host: a local halt reason (or a fault ID from the controller) holding
// NUL, an ANSI escape or a right-to-left override was printed raw by
// `turbulence-agent status`.
func TestPrintStatus_EscapesTerminalControls(t *testing.T) {
	since := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st := &localapi.Status{
		AgentID: "web-1", Hostname: "web\x1b[2J-1", Controller: "127.0.0.1:7443",
		LocallyHalted: true, LocalHaltSince: &since, LocalHaltReason: "oops\x00\u202egnp.exe\tx",
		Faults: []localapi.Fault{{ID: "f-1\x1b]0;pwned\x07", Kind: "cpu", State: "ACTIVE"}},
	}
	var out bytes.Buffer
	printStatus(&out, st, since.Add(time.Minute))
	got := out.String()
	for _, raw := range []string{"\x00", "\x1b", "\x07", "\u202e"} {
		if strings.Contains(got, raw) {
			t.Errorf("status output holds the raw control %q:\n%s", raw, got)
		}
	}
	for _, esc := range []string{`web\x1b[2J-1`, `oops\x00\u202egnp.exe\x09x`, `f-1\x1b]0;pwned\x07`} {
		if !strings.Contains(got, esc) {
			t.Errorf("status output lacks the escaped %q:\n%s", esc, got)
		}
	}
}
