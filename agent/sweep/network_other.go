//go:build !linux

package sweep

// Network has nothing to sweep off Linux: no qdiscs, no nftables.
func Network() ([]string, error) { return nil, nil }
