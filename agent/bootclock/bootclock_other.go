//go:build !linux

package bootclock

func bootID() (string, error) { return "", ErrUnsupported }

func boottime() (int64, error) { return 0, ErrUnsupported }
