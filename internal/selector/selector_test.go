package selector

import (
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// web-a is the agent most cases are asked about.
var (
	webA  = map[string]string{"role": "web", "zone": "a", "tier": "1"}
	webB  = map[string]string{"role": "web", "zone": "b"}
	dbA   = map[string]string{"role": "db", "zone": "a"}
	bare  = map[string]string{}
	hosts = map[string]map[string]string{"web-a": webA, "web-b": webB, "db-a": dbA, "bare": bare}
)

func TestParse_Matches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sel  string
		want []string // the hosts it matches, sorted
	}{
		{"", []string{"bare", "db-a", "web-a", "web-b"}},
		{"   ", []string{"bare", "db-a", "web-a", "web-b"}},
		{"role=web", []string{"web-a", "web-b"}},
		{"role==web", []string{"web-a", "web-b"}},
		{"role!=web", []string{"bare", "db-a"}}, // absent counts as not equal
		{"role in (web,db)", []string{"db-a", "web-a", "web-b"}},
		{"role in (web, db )", []string{"db-a", "web-a", "web-b"}},
		{"zone notin (a)", []string{"bare", "web-b"}},
		{"tier", []string{"web-a"}},
		{"!tier", []string{"bare", "db-a", "web-b"}},
		{"role=web,zone=a", []string{"web-a"}},
		{"role=web, zone notin (a), !tier", []string{"web-b"}},
		{"role=web,role=db", nil},
		{"zone=", nil}, // an empty value: no host has zone set to ""
		{"example.com/rack=r1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.sel)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want no error", tt.sel, err)
			}
			var got []string
			for _, name := range []string{"bare", "db-a", "web-a", "web-b"} {
				if s.Matches(hosts[name]) {
					got = append(got, name)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Parse(%q) matches %v, want %v", tt.sel, got, tt.want)
			}
		})
	}
}

func TestParse_Refused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sel  string
		want string // in the error
	}{
		{"role=", ""}, // accepted; see below
		{"role=web,", "not a label selector"},
		{"role in (web", "not a label selector"},
		{"role in web", "not a label selector"},
		{"=web", "not a label selector"},
		{"ro le=web", "not a label selector"},
		{"role=we b", "not a label selector"},
		{"role=" + strings.Repeat("v", 64), "not a label selector"},
		{"-role=web", "not a label selector"},
		{"role notin ()", ""}, // accepted by the grammar: an empty set
		{"cpus>4", `operator ">"`},
		{"cpus<4", `operator "<"`},
		{"role=web,cpus>4", `on key "cpus"`},
		{strings.Repeat("a", limits.MaxSelector+1), "above the limit of 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.sel)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want no error", tt.sel, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.sel, err, tt.want)
			}
		})
	}
}

func TestParse_AtTheLimit(t *testing.T) {
	t.Parallel()
	// The bound is inclusive: "a,a,…,a,ab" of exactly MaxSelector bytes
	// is accepted.
	text := "a" + strings.Repeat(",a", (limits.MaxSelector-4)/2) + ",ab"
	if len(text) != limits.MaxSelector {
		t.Fatalf("test selector is %d bytes, want %d", len(text), limits.MaxSelector)
	}
	if _, err := Parse(text); err != nil {
		t.Fatalf("Parse(%d bytes) = %v, want no error", len(text), err)
	}
}

func TestString_Canonical(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                                "",
		"zone=a,role=web":                 "role=web,zone=a",
		"role==web":                       "role==web",
		"role in ( web , db )":            "role in (db,web)",
		"!tier, zone notin (b,a), region": "region,!tier,zone notin (a,b)",
	}
	for in, want := range tests {
		s, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", in, err)
		}
		if got := s.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestZeroSelectorMatchesAll(t *testing.T) {
	t.Parallel()
	var s Selector
	if !s.Empty() || !s.Matches(nil) || !s.Matches(webA) {
		t.Fatal("the zero Selector must be empty and match everything")
	}
}
