//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The guest is a Linux /init and service; elsewhere it only says so, so
// that the module still builds and vets on every GOOS.
func main() {
	fmt.Fprintln(os.Stderr, "the VM lab's systemd guest runs only on Linux")
	os.Exit(2)
}
