//go:build !linux

package hostinfo

// KernelFeatures finds nothing off Linux: no qdiscs, no nftables.
func KernelFeatures() []string { return nil }
