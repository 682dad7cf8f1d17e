package partition

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// tables is the part of nftables the injector needs; nft_linux.go is the
// kernel, tests may use a fake.
type tables interface {
	// Create makes table name with rules in one atomic batch: all or
	// nothing (invariant 6).
	Create(name string, rules []Rule) error
	// Delete deletes table name; a table that is not there is success.
	Delete(name string) error
	// Counters sums the drop rules' counters of table name.
	Counters(name string) (packets, bytes uint64, err error)
	// List returns the names of the inet tables.
	List() ([]string, error)
}

// Config configures an Injector.
type Config struct {
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Exclusions says what no partition may cut.
	Exclusions network.ExclusionConfig
	// Owner is the agent whose tables these are (invariant 7): its tag is
	// in every table's name.
	Owner inject.Owner
}

// Injector applies partitions.
type Injector struct {
	cfg    Config
	tables tables
}

var _ inject.Kind = (*Injector)(nil)

// New returns a partition injector working on the host's nftables, in the
// calling thread's network namespace.
func New(cfg Config) *Injector { return newWithTables(cfg, hostTables()) }

func newWithTables(cfg Config, t tables) *Injector {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Injector{cfg: cfg, tables: t}
}

// Kind implements inject.Injector.
func (*Injector) Kind() string { return faultspec.KindPartition }

// Apply implements inject.Injector: the whole table in one batch.
func (in *Injector) Apply(ctx context.Context, f *turbulencev1.Fault, _ time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetPartition()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no partition spec", f.GetId())
	}
	excl, err := in.cfg.Exclusions.Exclusions(ctx, spec.GetTarget())
	if err != nil {
		return nil, err
	}
	rules, err := Plan(spec, excl)
	if err != nil {
		return nil, err
	}
	name := TableName(in.cfg.Owner, f.GetId())
	// Invariant 3: the table is in the journal before it is in the kernel.
	undo := encodeUndo(name)
	if err := inject.RecordUndo(ctx, undo); err != nil {
		return nil, err
	}
	if err := in.tables.Create(name, rules); err != nil {
		return nil, fmt.Errorf("create nftables table %s: %w", name, err)
	}
	in.cfg.Logger.Info("partition applied", "fault_id", f.GetId(), "table", name, "rules", len(rules))
	return &handle{tables: in.tables, name: name, exclusions: network.Describe(excl), undo: undo}, nil
}

type handle struct {
	tables     tables
	name       string
	exclusions []string
	undo       []byte

	mu       sync.Mutex
	reverted bool
}

// Revert deletes the table; idempotent.
func (h *handle) Revert(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reverted {
		return nil
	}
	if err := h.tables.Delete(h.name); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", h.name, err)
	}
	h.reverted = true
	return nil
}

// Observe reports the exclusions and what the drop rules counted.
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.Exclusions = h.exclusions
	if p, b, err := h.tables.Counters(h.name); err == nil {
		st.Network = &turbulencev1.NetworkStats{Packets: p, Bytes: b, Drops: p}
	}
}

// Done returns nil: a table never goes by itself.
func (*handle) Done() <-chan struct{} { return nil }

// Err returns nil.
func (*handle) Err() error { return nil }

// Undo returns the record written before the table was made.
func (h *handle) Undo() []byte { return h.undo }
