//go:build !linux

package worker

import "errors"

func readHostSample() (hostSample, error) {
	return hostSample{}, errors.New("host-utilisation mode needs Linux /proc/stat")
}
