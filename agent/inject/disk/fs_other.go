//go:build !linux

package disk

import "os"

// Off Linux every disk fault is refused; these keep the package compiling.

func statSpace(string) (Space, bool, error)   { return Space{}, false, ErrUnsupported }
func allocate(*os.File, uint64) error         { return ErrUnsupported }
func allocatedBytes(*os.File) (uint64, error) { return 0, ErrUnsupported }
func probeDirect(string, int) (bool, error)   { return false, ErrUnsupported }

var errNoFallocate = ErrUnsupported
