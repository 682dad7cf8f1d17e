package experiment

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes. Parse must never panic, must
// return either a spec or an *Error, and a spec it accepts must survive
// Validate, Timeline and a JSON round trip through Parse again (JSON is
// YAML) with the same meaning.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("../../examples/experiments/*.yaml")
	for _, p := range append(seeds, examples...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("targets: {web: {count: 0}}"))
	f.Add([]byte("steps: [{name: a, after: a, duration: 1s}]"))
	f.Add([]byte("name: [1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a spec with error %v", err)
			}
			problems(t, err) // fails unless an *Error
			return
		}
		_ = s.Validate()
		_ = s.Timeline()
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal(parsed spec) = %v", err)
		}
		s2, err := Parse(b)
		if err != nil {
			// A cap written as 0 cannot come back from a parsed spec, and
			// every other field re-encodes as it was read.
			t.Fatalf("Parse(Marshal(spec)) = %v\n%s", err, b)
		}
		b2, _ := json.Marshal(s2)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", b, b2)
		}
	})
}
