package report

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzRender reads arbitrary JSON as a report and renders it every way:
// no input may make a renderer fail, panic or hang, the JSON must read
// back, and the page must stay self-contained.
func FuzzRender(f *testing.F) {
	for _, r := range []*Report{Example(), refused(), {}} {
		var b bytes.Buffer
		if err := JSON(&b, r); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte(`{"started_at":"0001-01-01T00:00:01Z","ended_at":"9999-12-31T23:59:59Z","probes":[{"min":-1e308,"max":1e308,"samples":[{"at":"5000-01-01T00:00:00Z","value":"+Inf"},{"value":1.7e308}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		var js bytes.Buffer
		if err := JSON(&js, r); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if _, err := ReadJSON(&js); err != nil {
			t.Fatalf("ReadJSON(JSON(r)): %v", err)
		}
		if err := Text(io.Discard, r); err != nil {
			t.Fatalf("Text: %v", err)
		}
		doc, raw := render(t, r)
		selfContained(t, doc)
		if strings.Contains(raw, "ZgotmplZ") {
			t.Error("html/template refused a value (ZgotmplZ in the page)")
		}
	})
}

// TestValueAxis_Extremes lays out value axes at the limits of float64:
// a few ticks, all finite, in order, and every value maps inside the
// chart (or just outside, for the infinities).
func TestValueAxis_Extremes(t *testing.T) {
	t.Parallel()
	b := box{X: 0, Y: 0, W: 100, H: 100}
	for _, values := range [][]float64{
		{-math.MaxFloat64, math.MaxFloat64},
		{1e20, 1e20 + 1},
		{-5, -5},
		{0.3, 0.1},
		{math.NaN(), math.Inf(1)},
		{math.SmallestNonzeroFloat64},
		nil,
	} {
		va, ticks := newValueAxis(values, false)
		if len(ticks) < 2 || len(ticks) > 2*yTicksWanted+3 {
			t.Errorf("newValueAxis(%v): %d ticks %v, want 2..%d", values, len(ticks), ticks, 2*yTicksWanted+3)
		}
		for i, v := range ticks {
			if math.IsNaN(v) || math.IsInf(v, 0) || (i > 0 && v <= ticks[i-1]) {
				t.Errorf("newValueAxis(%v): ticks %v not finite and increasing", values, ticks)
				break
			}
		}
		for _, v := range values {
			if y := va.y(b, v); math.IsNaN(y) && !math.IsNaN(v) || y < -clipMargin || y > b.H+clipMargin {
				t.Errorf("newValueAxis(%v).y(%v) = %v, outside the chart", values, v, y)
			}
		}
	}
}

// TestTimeAxis_Ticks checks the time labels stay few and round for any
// span, from a second to centuries.
func TestTimeAxis_Ticks(t *testing.T) {
	t.Parallel()
	t0 := ExampleStart
	for _, span := range []time.Duration{time.Second, 56 * time.Second, 10 * time.Minute, 30 * 24 * time.Hour, math.MaxInt64} {
		ticks := timeAxis{t0: t0, t1: t0.Add(span)}.ticks()
		if len(ticks) < 1 || len(ticks) > maxXTicks+1 {
			t.Errorf("span %v: %d ticks, want 1..%d", span, len(ticks), maxXTicks+1)
		}
	}
}
