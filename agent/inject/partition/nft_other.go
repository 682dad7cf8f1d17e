//go:build !linux

package partition

import "errors"

// hostTables off Linux: nftables does not exist there.
func hostTables() tables { return noTables{} }

type noTables struct{}

func (noTables) Create(string, []Rule) error             { return errors.ErrUnsupported }
func (noTables) Delete(string) error                     { return errors.ErrUnsupported }
func (noTables) Counters(string) (uint64, uint64, error) { return 0, 0, errors.ErrUnsupported }
func (noTables) List() ([]string, error)                 { return nil, errors.ErrUnsupported }

// NewInNetNS has no namespaces to work in here: every call fails.
func NewInNetNS(cfg Config, _ int) *Injector { return newWithTables(cfg, noTables{}) }
