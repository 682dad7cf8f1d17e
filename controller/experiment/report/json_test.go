package report

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestJSON_RoundTrip writes reports and reads them back: every field,
// NaN and infinite values, zero times and empty lists come back exactly.
func TestJSON_RoundTrip(t *testing.T) {
	t.Parallel()
	odd := Example()
	odd.State = StateRunning
	odd.EndedAt = time.Time{}
	odd.Abort = nil
	odd.Probes[1].Samples = append(odd.Probes[1].Samples,
		Sample{At: ExampleStart.Add(time.Minute), Value: Float(math.NaN())},
		Sample{At: ExampleStart.Add(61 * time.Second), Value: Float(math.Inf(1))},
		Sample{At: ExampleStart.Add(62 * time.Second), Value: Float(math.Inf(-1))},
		Sample{At: ExampleStart.Add(63 * time.Second), Value: Float(-0.5e-300)},
	)
	odd.Steps[1].Start, odd.Steps[1].End, odd.Steps[1].GroupID, odd.Steps[1].Agents = time.Time{}, time.Time{}, "", nil

	for name, r := range map[string]*Report{
		"example": Example(),
		"running": odd,
		"refused": {Version: FormatVersion, ID: "e", Name: "n", State: StateRefused, StartedAt: ExampleStart},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := JSON(&buf, r); err != nil {
				t.Fatalf("JSON: %v", err)
			}
			got, err := ReadJSON(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("ReadJSON: %v\n%s", err, buf.String())
			}
			if d := cmp.Diff(r, got, equateFloat); d != "" {
				t.Errorf("ReadJSON(JSON(r)) differs from r (-want +got):\n%s", d)
			}
		})
	}
}

// TestFloat_JSON checks the JSON form of the values encoding/json alone
// cannot write, and that anything else is refused with its value named.
func TestFloat_JSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    float64
		json string
	}{
		{0.412, `0.412`},
		{1e-7, `1e-07`},
		{-3, `-3`},
		{math.NaN(), `"NaN"`},
		{math.Inf(1), `"+Inf"`},
		{math.Inf(-1), `"-Inf"`},
	} {
		b, err := Float(tc.v).MarshalJSON()
		if err != nil || string(b) != tc.json {
			t.Errorf("Float(%v).MarshalJSON() = %s, %v; want %s", tc.v, b, err, tc.json)
		}
		var f Float
		if err := f.UnmarshalJSON([]byte(tc.json)); err != nil {
			t.Errorf("UnmarshalJSON(%s): %v", tc.json, err)
		}
		if got := float64(f); got != tc.v && !(math.IsNaN(got) && math.IsNaN(tc.v)) {
			t.Errorf("UnmarshalJSON(%s) = %v, want %v", tc.json, got, tc.v)
		}
	}
	var f Float
	if err := f.UnmarshalJSON([]byte(`"fast"`)); err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf(`UnmarshalJSON("fast") = %v, want an error naming the value`, err)
	}
	if _, err := ReadJSON(strings.NewReader(`{"probes":[{"samples":[{"value":"fast"}]}]}`)); err == nil {
		t.Error(`ReadJSON with a sample value "fast" succeeded, want an error`)
	}
}

// equateFloat compares Float values, with NaN equal to NaN.
var equateFloat = cmp.Comparer(func(a, b Float) bool {
	return a == b || (math.IsNaN(float64(a)) && math.IsNaN(float64(b)))
})
