// Command turbctl is the command-line client of a Turbulence controller:
// agents, faults, halt/resume and events over mutual-TLS gRPC. All logic
// lives in package controller/cli; its documentation lists the exit codes.
package main

import (
	"os"

	"github.com/turbulence-sre/turbulence/controller/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
