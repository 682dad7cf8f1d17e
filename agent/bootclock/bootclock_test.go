package bootclock

import (
	"runtime"
	"testing"
	"time"
)

func TestAt_UntilRoundTrips(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	for _, d := range []time.Duration{-time.Hour, -time.Second, 0, 3 * time.Second, 24 * time.Hour} {
		i, err := At(time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		left, ok := i.Until()
		// Between At and Until only this test's own instructions run;
		// a second is a bound no scheduler delay reaches.
		if !ok || left > d || left < d-time.Second {
			t.Errorf("At(now%+v).Until() = %v, %v; want about %v", d, left, ok, d)
		}
	}
}

func TestUntil_AnotherBootSaysNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	now, err := Now()
	if err != nil {
		t.Fatal(err)
	}
	for name, i := range map[string]Instant{
		"zero":         {},
		"another boot": {Boot: now.Boot + "-before", Nanos: now.Nanos + int64(time.Hour)},
	} {
		if left, ok := i.Until(); ok {
			t.Errorf("%s: Until() = %v, true; want false", name, left)
		}
	}
}

// A wall-clock time without a monotonic reading is judged on the wall
// clock as it reads at the call: the conversion on arrival.
func TestAt_WallTimeFromTheWire(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	wire := time.Unix(0, time.Now().Add(time.Minute).UnixNano()) // no monotonic reading
	i, err := At(wire)
	if err != nil {
		t.Fatal(err)
	}
	if left, ok := i.Until(); !ok || left > time.Minute || left < time.Minute-time.Second {
		t.Errorf("At(wire time a minute ahead).Until() = %v, %v", left, ok)
	}
}
