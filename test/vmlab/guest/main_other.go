//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The guest is a Linux /init; elsewhere it only says so, so that the
// module still builds and vets on every GOOS.
func main() {
	fmt.Fprintln(os.Stderr, "the VM lab guest runs only as a Linux /init")
	os.Exit(2)
}
