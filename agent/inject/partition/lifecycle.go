package partition

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/turbulence-sre/turbulence/agent/inject"
)

// undoRecord is a partition's undo record; its JSON name is the one the
// journal has always used.
type undoRecord struct {
	Table string `json:"nft_table,omitempty"`
}

func encodeUndo(table string) []byte { return inject.EncodeUndo(undoRecord{Table: table}) }

// Guarded implements inject.Kind: a table has no worker, so a guardian
// deletes it if the agent cannot.
func (*Injector) Guarded() bool { return true }

// Recover implements inject.Kind: it deletes the recorded table, in the
// calling thread's network namespace. With no undo record nothing was
// made (the record comes first).
func (in *Injector) Recover(_ context.Context, r inject.Recorded) error {
	u, ok, err := inject.DecodeUndo[undoRecord](r)
	if err != nil || !ok || u.Table == "" {
		return err
	}
	return in.tables.Delete(u.Table)
}

// Sweep implements inject.Kind: it deletes this owner's tables (named with
// its tag) that no open fault names, and reports other agents' tables.
func (in *Injector) Sweep(_ context.Context, open []inject.Recorded) (inject.Swept, error) {
	var out inject.Swept
	names, err := in.tables.List()
	switch {
	case errors.Is(err, syscall.EPERM):
		// Without CAP_NET_ADMIN this agent could not have made a table
		// either: nothing of its own can be there.
		return out, nil
	case err != nil:
		return out, fmt.Errorf("list nftables tables: %w", err)
	}
	var keep []string
	for _, r := range open {
		if u, _, err := inject.DecodeUndo[undoRecord](r); err == nil && u.Table != "" {
			keep = append(keep, u.Table)
		}
	}
	mine := ownerPrefix(in.cfg.Owner)
	for _, n := range names {
		switch {
		case !strings.HasPrefix(n, TablePrefix), slices.Contains(keep, n):
		case !strings.HasPrefix(n, mine):
			out.Foreign = append(out.Foreign, "table inet "+n)
		default:
			if err := in.tables.Delete(n); err != nil {
				return out, fmt.Errorf("delete nftables table %s: %w", n, err)
			}
			out.Removed = append(out.Removed, "table inet "+n)
		}
	}
	return out, nil
}
