package experiment

import (
	"os"
	"testing"
)

// BenchmarkParseValidate reads and checks the largest example, as the
// controller does for every experiment it is asked to start and turbctl
// for every validate.
func BenchmarkParseValidate(b *testing.B) {
	data, err := os.ReadFile("../../examples/experiments/web-cpu-slo.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
