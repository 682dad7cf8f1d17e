//go:build !unix

package connlimit

// NoFile is 0 where the limit cannot be read: callers then keep their caps.
func NoFile() uint64 { return 0 }
