package raftnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLog returns the hclog.Logger raft needs, delivering every record to
// logger. Raft is the only user of hclog in the controller; this keeps its
// lines on the same slog sink as everything else (docs/style.md, errors, logging and shutdown). It uses
// hclog's intercept logger with a sink rather than a hand-written
// hclog.Logger, whose StandardLogger method would drag in the std log
// package.
func newHCLog(logger *slog.Logger, name string, level hclog.Level) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: level, Output: io.Discard})
	il.RegisterSink(&slogSink{logger: logger, level: level})
	return il
}

// slogSink is an hclog.SinkAdapter writing to slog.
type slogSink struct {
	logger *slog.Logger
	level  hclog.Level
}

func (s *slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	if level < s.level || level == hclog.Off {
		return
	}
	sl := slogLevel(level)
	ctx := context.Background()
	if !s.logger.Enabled(ctx, sl) {
		return
	}
	all := make([]any, 0, 2+len(args))
	all = append(all, "component", name)
	for _, a := range args {
		// hclog.Fmt values are printf calls to be made at output time.
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				a = fmt.Sprintf(format, f[1:]...)
			}
		}
		all = append(all, a)
	}
	s.logger.Log(ctx, sl, msg, all...)
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
