package selector

import (
	"fmt"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

func TestValidateLabels(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range limits.MaxLabels + 1 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	atLimit := map[string]string{}
	for i := range limits.MaxLabels {
		atLimit[fmt.Sprintf("k%02d", i)] = "v"
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   []string // each must be in the error; none means valid
	}{
		{"none", nil, nil},
		{"plain", map[string]string{"role": "web", "zone": "eu-1a", "empty": ""}, nil},
		{"prefixed key", map[string]string{"example.com/rack": "r1"}, nil},
		{"count at the limit", atLimit, nil},
		{"key at the limit", map[string]string{strings.Repeat("k", limits.MaxLabelKey): "v"}, nil},
		{"value at the syntax limit", map[string]string{"k": strings.Repeat("v", 63)}, nil},
		{"too many", many, []string{"33 labels, above the limit of 32"}},
		{"key too long", map[string]string{strings.Repeat("k", limits.MaxLabelKey+1): "v"},
			[]string{"key is 64 bytes, above the limit of 63 bytes"}},
		{"value too long for the wire", map[string]string{"k": strings.Repeat("v", limits.MaxLabelValue+1)},
			[]string{`label "k": value is 256 bytes, above the limit of 255 bytes`}},
		{"value too long for the syntax", map[string]string{"k": strings.Repeat("v", 64)},
			[]string{`label "k": value`, "not a valid label value", "63"}},
		{"empty key", map[string]string{"": "v"}, []string{`label "": key is not a valid label key`}},
		{"space in key", map[string]string{"my role": "web"}, []string{`label "my role": key is not a valid label key`}},
		{"bad value", map[string]string{"role": "web server"}, []string{`label "role": value "web server" is not a valid label value`}},
		{"two at once", map[string]string{"a b": "x", "c": "-d"},
			[]string{`label "a b": key`, `label "c": value "-d"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateLabels(tt.labels)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("ValidateLabels(%v) = %v, want nil", tt.labels, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateLabels(%v) = nil, want an error", tt.labels)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ValidateLabels(%v) = %q, want it to contain %q", tt.labels, err, w)
				}
			}
		})
	}
}
