package controlapi

import "testing"

// TestGroupPercentCap: the percentage cap rounds down, but never below
// one agent, so that a fleet of one can run a group of one.
func TestGroupPercentCap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		percent    float64
		registered int
		want       int
	}{
		{50, 1, 1},
		{50, 3, 1},
		{50, 4, 2},
		{10, 25, 2},
		{100, 7, 7},
		{50, 0, 1},
	} {
		if got := groupPercentCap(c.percent, c.registered); got != c.want {
			t.Errorf("groupPercentCap(%g, %d) = %d, want %d", c.percent, c.registered, got, c.want)
		}
	}
}
