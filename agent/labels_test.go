package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadLabels: the file's labels, overridden by the flags, and a clear
// refusal naming the label and the rule for a bad file or flag.
func TestLoadLabels(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, text string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "labels.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		file    string // YAML; "" means no file
		flags   map[string]string
		want    map[string]string
		wantErr []string
	}{
		{name: "nothing", want: map[string]string{}},
		{name: "flags only", flags: map[string]string{"role": "web"}, want: map[string]string{"role": "web"}},
		{name: "file only", file: "role: web\nzone: eu-1a\nexample.com/rack: r1\n",
			want: map[string]string{"role": "web", "zone": "eu-1a", "example.com/rack": "r1"}},
		{name: "flag overrides file", file: "role: web\nzone: a\n", flags: map[string]string{"zone": "b"},
			want: map[string]string{"role": "web", "zone": "b"}},
		{name: "empty file", file: "\n", want: map[string]string{}},
		{name: "duplicate key", file: "role: web\nrole: db\n", wantErr: []string{"labels file", "role"}},
		{name: "not a map", file: "- role\n", wantErr: []string{"labels file"}},
		// The YAML decoder reads a bare scalar as the string it is written as.
		{name: "number value", file: "rack: 12\n", want: map[string]string{"rack": "12"}},
		{name: "nested map", file: "rack:\n  row: 1\n", wantErr: []string{"labels file"}},
		{name: "bad key in file", file: "my role: web\n", wantErr: []string{`label "my role": key is not a valid label key`}},
		{name: "bad value in flag", flags: map[string]string{"role": "web server"},
			wantErr: []string{"--label flags", `label "role": value "web server" is not a valid label value`}},
		{name: "key too long", flags: map[string]string{strings.Repeat("k", 64): "v"},
			wantErr: []string{"key is 64 bytes, above the limit of 63 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = write(t, tt.file)
			}
			got, err := loadLabels(path, tt.flags)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("loadLabels = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("loadLabels error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadLabels = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loadLabels (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := loadLabels(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("loadLabels(a missing file) = nil, want an error")
	}
}

// TestNew_RefusesBadLabels: a bad label refuses to build the agent.
func TestNew_RefusesBadLabels(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Controllers: []string{"127.0.0.1:1"}, StateDir: t.TempDir(), Labels: map[string]string{"-role": "web"}})
	if err == nil || !strings.Contains(err.Error(), `label "-role"`) {
		t.Fatalf("New(label -role) = %v, want a refusal naming the label", err)
	}
}
