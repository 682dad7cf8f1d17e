package experiment

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples parses and validates every file of examples/experiments:
// an example that does not validate teaches the wrong thing.
func TestExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../examples/experiments/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("examples/experiments holds %d files, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for i := range s.Steps {
				if _, err := s.Steps[i].FaultSpec(); err != nil {
					t.Errorf("steps[%d].FaultSpec: %v", i, err)
				}
			}
		})
	}
}
