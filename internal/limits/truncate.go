package limits

import "unicode/utf8"

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with an ellipsis. The server uses it on text it composes itself (an
// event's message, an audit record's summary and error) from bounded
// parts, so that what it stores keeps the bounds of the records it
// returns. It is deterministic, so the FSM may call it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
