package agentapi

import (
	"log/slog"
	"sync"
	"time"
)

// endLogPerSecond bounds the session-end lines logged per second. A
// leader change or a network cut ends thousands of sessions at once;
// every end is counted on the metrics endpoint (MetricSessionsEnded)
// anyway, and the first line after a quiet spell says how many were
// left out.
const endLogPerSecond = 20

// endLog is the rate limit of session-end lines: at most endLogPerSecond
// in each one-second window.
type endLog struct {
	mu      sync.Mutex
	window  time.Time // start of the current window
	n       int       // lines logged in it
	dropped int       // lines left out since the last one logged
}

// allow reports whether a line may be logged at now and, if so, how many
// were left out before it.
func (l *endLog) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= endLogPerSecond {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// sessionEnded counts a session's end under its cause and logs it, every
// cause alike (a dropped connection too), within the rate limit.
func (h *Hub) sessionEnded(logger *slog.Logger, cause string, err error) {
	h.metrics.sessionEnded(cause)
	ok, dropped := h.ends.allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"cause", cause}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	if dropped > 0 {
		attrs = append(attrs, "ends_not_logged_before", dropped)
	}
	logger.Info("agent session ended", attrs...)
}
