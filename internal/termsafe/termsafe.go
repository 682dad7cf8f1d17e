// Package termsafe makes text from elsewhere safe to print on a terminal.
// A halt reason, a label or an agent's error can hold anything a caller
// sent: NUL, ANSI escape sequences that move the cursor or rewrite the
// screen, carriage returns that overwrite a line, or bidirectional
// controls that make a line read in another order than it was written
// (issue 13, finding 6). Every human table of turbctl and of
// `turbulence-agent status` passes such text through String; JSON output
// does not, since encoding/json already escapes control characters and a
// script must get the bytes that were stored.
package termsafe

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every character that a terminal would act on
// instead of show replaced by a visible escape: C0 and C1 controls
// (including NUL, ESC, DEL, tab and line breaks) as \x1b-style escapes,
// and Unicode format characters (the bidirectional embeddings, overrides
// and isolates U+202A–U+202E and U+2066–U+2069, the marks U+200E and
// U+200F, zero-width characters, and the rest of category Cf) and line
// and paragraph separators as \u202e-style escapes. Invalid UTF-8 bytes
// become \xff-style escapes. A backslash is left alone: the result is
// for eyes, not for parsing back. Plain text is returned as it is,
// without allocating.
func String(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case unsafe(r):
			if r < 0x100 {
				b.WriteString(`\x`)
				b.WriteString(hex2(byte(r)))
			} else {
				b.WriteString(`\u`)
				h := strconv.FormatInt(int64(r), 16)
				b.WriteString(strings.Repeat("0", max(0, 4-len(h))) + h)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Lines is String for multi-line text: it keeps the line feeds between
// lines and escapes everything else String does.
func Lines(s string) string {
	if clean(s) {
		return s
	}
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = String(p)
	}
	return strings.Join(parts, "\n")
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// unsafe reports whether a terminal may act on r rather than show it.
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// clean reports whether s is printable as it is: the common case, checked
// without allocating.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			// Non-ASCII: decide rune by rune.
			for _, r := range s[i:] {
				if r == utf8.RuneError || unsafe(r) {
					return false
				}
			}
			return true
		}
	}
	return true
}

// Writer returns a writer that passes each write through Lines. Use it
// for messages that quote text from elsewhere (an error from the
// controller that names a halt reason); each write must hold whole
// characters, as one fmt.Fprintf call does.
func Writer(w io.Writer) io.Writer { return writer{w} }

type writer struct{ w io.Writer }

func (sw writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(sw.w, Lines(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
