//go:build !linux

package hostinfo

func kernelRelease() string { return "" }
