package cli

import (
	"bytes"
	"encoding/json"
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// -o json always carries "halted", false included: scripts test .halted.
func TestPrintHalt_JSONAlwaysHasHalted(t *testing.T) {
	for _, halted := range []bool{false, true} {
		var out bytes.Buffer
		a := &app{stdout: &out, output: "json"}
		if err := a.printHalt(&turbulencev1.HaltStatus{Halted: halted, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("halted=%v: %v\n%s", halted, err, out.String())
		}
		if v, ok := got["halted"]; !ok || v != halted {
			t.Errorf("halted=%v: JSON %s has halted = %v (present %v)", halted, out.String(), v, ok)
		}
	}
}
