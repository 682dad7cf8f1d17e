package config

import (
	"strings"
	"testing"
	"time"
)

type sample struct {
	Timeout Duration `json:"timeout"`
	Size    ByteSize `json:"size"`
}

func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	var s sample
	if err := DecodeStrict([]byte("timeout: 90s\nsize: 512MiB\n"), &s); err != nil {
		t.Fatal(err)
	}
	if s.Timeout.D() != 90*time.Second || s.Size != 512<<20 {
		t.Fatalf("decoded %+v", s)
	}
	if err := DecodeStrict([]byte("timeout: 1s\nsizee: 1\n"), &s); err == nil || !strings.Contains(err.Error(), "sizee") {
		t.Fatalf("unknown field: err = %v, want one naming sizee", err)
	}
	if err := DecodeStrict([]byte("timeout: 10\n"), &s); err == nil {
		t.Fatal("a bare number was accepted as a duration")
	}
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ByteSize{"4096": 4096, "1KiB": 1024, "2GiB": 2 << 30, "1.5GB": 1_500_000_000, "10 MiB": 10 << 20, "7B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "ten", "1XB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", bad)
		}
	}
	if s := ByteSize(3 << 30).String(); s != "3GiB" {
		t.Errorf("String = %s", s)
	}
}
