package probe

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestSample_JSON checks that a sample that measured nothing (NaN) still
// encodes, as null, and reads back as NaN; and that a number round-trips.
func TestSample_JSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	for _, in := range []Sample{
		{At: at, Value: math.NaN(), Err: "no data: …", Detail: FailNoData},
		{At: at, Value: math.Inf(1), Err: "value is +Inf", Detail: FailBounds},
		{At: at, Value: 12.5, Pass: true, Detail: "status 200"},
	} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("json.Marshal(%+v) = %v", in, err)
		}
		var out Sample
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v", b, err)
		}
		wantNaN := math.IsNaN(in.Value) || math.IsInf(in.Value, 0)
		if math.IsNaN(out.Value) != wantNaN || (!wantNaN && out.Value != in.Value) ||
			!out.At.Equal(in.At) || out.Pass != in.Pass || out.Err != in.Err || out.Detail != in.Detail {
			t.Errorf("round trip of %+v through %s = %+v", in, b, out)
		}
	}
	b, _ := json.Marshal(Sample{At: at, Value: math.NaN()})
	if want := `{"at":"2026-12-03T16:00:00Z","value":null,"pass":false}`; string(b) != want {
		t.Errorf("json.Marshal(NaN sample) = %s, want %s", b, want)
	}
}
