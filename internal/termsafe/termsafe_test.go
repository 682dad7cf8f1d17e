package termsafe_test

import (
	"testing"

	"github.com/turbulence-sre/turbulence/internal/termsafe"
)

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"café ✓ 日本", "café ✓ 日本"},
		{"a\x00b", `a\x00b`},
		{"\x1b[2J\x1b[31mred", `\x1b[2J\x1b[31mred`},
		{"tab\there\nline\rcr", `tab\x09here\x0aline\x0dcr`},
		{"del\x7f", `del\x7f`},
		{"c1\u0085\u009b", `c1\x85\x9b`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"sep\u2028\u2029", `sep\u2028\u2029`},
		{"bad\xffutf8", `bad\xffutf8`},
	}
	for _, tt := range tests {
		if got := termsafe.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLines(t *testing.T) {
	if got, want := termsafe.Lines("one\x1b[K\ntwo\u202e\n"), "one\\x1b[K\ntwo\\u202e\n"; got != want {
		t.Errorf("Lines() = %q, want %q", got, want)
	}
}

func BenchmarkStringClean(b *testing.B) {
	s := "fault f-0123456789ab on agent web-17: cpu 50% for 5m"
	for b.Loop() {
		_ = termsafe.String(s)
	}
}
