package hostmetrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// DefaultInterval is the sampling interval until SetInterval changes it:
// the agent's default heartbeat interval.
const DefaultInterval = time.Second

// minInterval bounds SetInterval: /proc counts CPU time in 10 ms ticks,
// so a shorter interval measures mostly rounding.
const minInterval = 100 * time.Millisecond

// Config configures a Sampler. Zero values take the defaults.
type Config struct {
	// ProcRoot and SysRoot are where /proc and /sys are mounted.
	ProcRoot string
	SysRoot  string
	// Paths are the paths whose filesystems are watched (the agent's
	// state directory at least); at most limits.MaxWatchedFilesystems.
	Paths    []string
	Interval time.Duration
	Logger   *slog.Logger
}

// Sampler samples the host's figures every interval and keeps the
// latest sample. Its methods are safe for concurrent use.
type Sampler struct {
	cfg      Config
	log      *slog.Logger
	interval atomic.Int64 // nanoseconds
	// reset wakes Run when the interval changes.
	reset chan struct{}

	// mu guards prev and latest. Sample holds it for a whole sample, so
	// two concurrent samples cannot interleave their counters.
	mu     sync.Mutex
	prev   counters
	latest *turbulencev1.HostMetrics
	// warned keeps a failing source from logging every interval.
	warned map[string]bool
	// disks caches physicalDisks, listed again every disksRefresh
	// samples (a disk plugged in shows within a minute at 1 s).
	disks    []string
	disksErr error
	disksAge int
	// now is time.Now; tests step it.
	now func() time.Time
}

// New returns a Sampler; it samples nothing until Run or Sample.
func New(cfg Config) *Sampler {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sampler{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "hostmetrics"),
		reset:  make(chan struct{}, 1),
		warned: make(map[string]bool),
		now:    time.Now,
	}
	s.interval.Store(int64(max(cfg.Interval, minInterval)))
	return s
}

// SetInterval changes the sampling interval, to follow the heartbeat
// interval the controller asks for (Welcome.heartbeat_interval).
func (s *Sampler) SetInterval(d time.Duration) {
	d = max(d, minInterval)
	if s.interval.Swap(int64(d)) == int64(d) {
		return
	}
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// Interval returns the sampling interval.
func (s *Sampler) Interval() time.Duration { return time.Duration(s.interval.Load()) }

// Run samples at once and then every interval until ctx is done.
func (s *Sampler) Run(ctx context.Context) error {
	s.Sample(ctx)
	t := time.NewTimer(s.Interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.reset:
			t.Reset(s.Interval())
		case <-t.C:
			s.Sample(ctx)
			t.Reset(s.Interval())
		}
	}
}

// Latest returns a copy of the latest sample, or nil before the first.
func (s *Sampler) Latest() *turbulencev1.HostMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return nil
	}
	return proto.CloneOf(s.latest)
}

// Sample takes a sample now, keeps it as the latest and returns it (the
// caller may keep it: it is not shared).
func (s *Sampler) Sample(ctx context.Context) *turbulencev1.HostMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cur, errs := s.read(ctx)
	for src, err := range errs {
		if !s.warned[src] {
			s.warned[src] = true
			s.log.Warn("host metric not readable; reported as absent", "source", src, "err", err)
		}
	}
	m := cur.metrics(s.prev, now)
	s.prev = cur
	s.prev.at = now
	s.latest = m
	return proto.CloneOf(m)
}
