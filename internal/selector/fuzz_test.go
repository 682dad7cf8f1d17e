package selector

import "testing"

// FuzzParse checks that Parse never panics and that what it accepts
// renders to a canonical text that parses back to the same selector (same
// text, same answers on a few label sets).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "role=web", "role==web", "role!=web", "role in (web,db)",
		"zone notin (a,b)", "tier", "!tier", "role=web,zone in (a),!tier",
		"example.com/rack=r1", "cpus>4", "a in (", "a,,b", "a=b=c", "!",
	} {
		f.Add(seed)
	}
	sets := []map[string]string{nil, webA, webB, dbA, {"a": "", "b": "c"}}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			return
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) rendered %q, which does not parse: %v", text, canon, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("Parse(%q) rendered %q, which re-renders as %q", text, canon, got)
		}
		for _, set := range sets {
			if s.Matches(set) != again.Matches(set) {
				t.Fatalf("Parse(%q) and Parse(%q) disagree on %v", text, canon, set)
			}
		}
	})
}
