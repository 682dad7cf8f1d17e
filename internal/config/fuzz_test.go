package config

import (
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzDecodeStrict: no input makes the strict decoder panic, and whatever
// it accepts survives a round trip through the encoder unchanged (a
// Duration or ByteSize that printed differently from how it parses would
// silently change a safety limit when a config is rewritten).
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		"timeout: 90s\nsize: 512MiB\n",
		"timeout: 1h30m\nsize: 1G\n",
		"size: 0\n",
		"timeout: -5s\n",
		"sizee: 1\n",
		"timeout: 10\n",
		"timeout: 1s\ntimeout: 2s\n",
		"{}",
		"size: 18446744073709551615\n",
		"size: 16EiB\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		if err := DecodeStrict(data, &s); err != nil {
			return
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode %+v: %v", data, s, err)
		}
		var back sample
		if err := DecodeStrict(out, &back); err != nil {
			t.Fatalf("accepted %q, encoded as %q, which does not decode: %v", data, out, err)
		}
		if back != s {
			t.Fatalf("round trip of %q changed %+v into %+v (via %q)", data, s, back, out)
		}
	})
}

// TestParseByteSize_ExactAndBounded keeps what FuzzDecodeStrict found:
// large whole sizes parse exactly, and sizes past 2^64-1 are refused
// rather than wrapped.
func TestParseByteSize_ExactAndBounded(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ByteSize{
		"18446744073709551615B": 1<<64 - 1,
		"9007199254740993":      1<<53 + 1,
		"16383PiB":              0, // unknown unit: refused below
		"1.5GB":                 1_500_000_000,
		"8388607TiB":            8388607 << 40,
	} {
		got, err := ParseByteSize(in)
		if want == 0 {
			if err == nil {
				t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"18446744073709551616", "16777216TiB", "1e30", "NaN"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error naming the largest size", in, got)
		}
	}
}
