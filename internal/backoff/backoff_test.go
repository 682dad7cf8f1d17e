package backoff

import (
	"testing"
	"time"
)

func TestBackoff_CappedWithJitter(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Next(); got < w/2 || got > w {
			t.Errorf("wait #%d = %v, want in [%v, %v]", i, got, w/2, w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 100*time.Millisecond {
		t.Errorf("wait after reset = %v, want <= 100ms", got)
	}
}
