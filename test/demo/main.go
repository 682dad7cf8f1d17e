// Command demo is what `make demo` runs: it starts a one-node controller
// and a local agent in dev mode in a temporary directory, applies a 50 %
// CPU fault on one core for 10 s through turbctl, prints the load measured
// on the host while the fault runs, shows the agent taking the fault back
// at its deadline, and exits leaving nothing behind.
//
// It drives the three real binaries as a newcomer would, so what it prints
// is what they would see.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func main() { os.Exit(run()) }

type demo struct {
	bin     string
	dir     string
	grpc    string
	turbctl []string // global flags for turbctl
	procs   []*exec.Cmd
}

func run() int {
	bin := flag.String("bin", "bin", "directory holding the built binaries")
	load := flag.Uint("load", 50, "CPU load in percent on one core")
	dur := flag.Duration("duration", 10*time.Second, "how long the fault lives")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, data) for inspection")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, err := newDemo(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	err = d.run(ctx, uint32(*load), *dur)
	d.shutdown()
	if *keep {
		fmt.Printf("\nkept %s (logs: controller.log, agent.log)\n", d.dir)
	} else if rmErr := os.RemoveAll(d.dir); rmErr != nil {
		fmt.Fprintln(os.Stderr, "demo: remove temporary directory:", rmErr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		fmt.Fprintln(os.Stderr, "run with -keep to look at the logs")
		return 1
	}
	return 0
}

func newDemo(bin string) (*demo, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "turbulence-demo-")
	if err != nil {
		return nil, err
	}
	return &demo{bin: abs, dir: dir}, nil
}

func (d *demo) run(ctx context.Context, load uint32, dur time.Duration) error {
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	raftAddr, err := freeAddr()
	if err != nil {
		return err
	}
	d.grpc = grpcAddr
	tlsDir := filepath.Join(d.dir, "controller", "tls")
	d.turbctl = []string{"--controller", grpcAddr,
		"--ca", filepath.Join(tlsDir, "ca.crt"), "--cert", filepath.Join(tlsDir, "admin.crt"), "--key", filepath.Join(tlsDir, "admin.key")}

	step("Starting a one-node controller (raft, mTLS, throwaway CA in %s)", tlsDir)
	if err := d.start("controller.log", "turbulence-controller", "--dev",
		"--data-dir", filepath.Join(d.dir, "controller"), "--grpc-addr", grpcAddr, "--raft-addr", raftAddr); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, "controller to answer", func() error {
		_, err := d.ctl(ctx, "status")
		return err
	}); err != nil {
		return err
	}

	step("Starting a local agent (it dials the controller; it listens on no port)")
	if err := d.start("agent.log", "turbulence-agent", "run", "--controller", grpcAddr,
		"--ca", filepath.Join(tlsDir, "ca.crt"), "--cert", filepath.Join(tlsDir, "agent.crt"), "--key", filepath.Join(tlsDir, "agent.key"),
		"--state-dir", filepath.Join(d.dir, "agent"), "--socket", filepath.Join(d.dir, "run", "agent.sock"),
		"--label", "env=demo"); err != nil {
		return err
	}
	var agentID string
	if err := waitFor(ctx, 30*time.Second, "agent to connect", func() error {
		out, err := d.ctl(ctx, "agents", "ls", "-o", "json")
		if err != nil {
			return err
		}
		var resp turbulencev1.ListAgentsResponse
		if err := protojson.Unmarshal(out, &resp); err != nil {
			return err
		}
		for _, a := range resp.GetAgents() {
			if a.GetConnected() {
				agentID = a.GetId()
				return nil
			}
		}
		return errors.New("no agent connected yet")
	}); err != nil {
		return err
	}
	if err := d.show(ctx, "agents", "ls"); err != nil {
		return err
	}

	step("Applying a %d %% CPU fault on one core for %s", load, dur)
	out, err := d.ctl(ctx, "fault", "apply", "cpu", "--agent", agentID, "--cores", "1",
		"--load", fmt.Sprint(load), "--duration", dur.String(), "-o", "json")
	if err != nil {
		return err
	}
	var fault turbulencev1.Fault
	if err := protojson.Unmarshal(out, &fault); err != nil {
		return fmt.Errorf("read fault: %w", err)
	}
	fmt.Printf("  $ turbctl fault apply cpu --agent %s --cores 1 --load %d --duration %s\n  fault %s, deadline %s\n",
		agentID, load, dur, fault.GetId(), fault.GetDeadline().AsTime().Local().Format(time.TimeOnly))

	m, err := d.measure(ctx, fault.GetId())
	if err != nil {
		return err
	}

	step("Result")
	fmt.Printf("  asked:    %d %% of one core for %s\n", load, dur)
	fmt.Printf("  measured: worker CPU time %.1f %% of one core (mean over %d samples, from /proc/<pid>/stat)\n", m.workerMean, m.samples)
	fmt.Printf("            whole host %.1f %% busy across %d CPUs while the fault ran (from /proc/stat)\n", m.hostMean, m.cpus)
	fmt.Printf("            the agent reported %.1f %% achieved (mean of its reports over the hold)\n", m.reportedMean)
	fmt.Printf("  others:   other processes kept %.2f of %d CPUs busy while the fault ran (host busy time minus the worker's)\n", m.othersCores, m.cpus)
	if m.contended() {
		fmt.Printf("  NOTE:     the host was contended during the hold: the worker shared the CPUs with that load,\n" +
			"            so the measured figure may fall short of the asked one; run the demo on an idle host to judge accuracy\n")
	}
	fmt.Printf("  reverted: %s by the agent (%s), %s after the deadline; worker %d is gone: %v\n",
		m.final.GetEndedAt().AsTime().Local().Format(time.TimeOnly+".000"), m.final.GetReason(),
		m.final.GetEndedAt().AsTime().Sub(m.final.GetDeadline().AsTime()).Round(time.Millisecond), m.pid, !alive(m.pid))
	if alive(m.pid) {
		return fmt.Errorf("worker %d still running after the revert", m.pid)
	}
	return d.show(ctx, "events")
}

// start launches one of the binaries with its output in a log file.
func (d *demo) start(logName, binary string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.dir, logName))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, binary), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", binary, err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

// shutdown stops the daemons in reverse order with SIGTERM, as systemd
// would, and waits for each.
func (d *demo) shutdown() {
	if len(d.procs) > 0 {
		step("Stopping the agent and the controller (SIGTERM)")
	}
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		select {
		case err := <-done:
			fmt.Printf("  %s exited (%v)\n", filepath.Base(p.Path), exitText(err))
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			fmt.Printf("  %s did not stop in 15s; killed (%v)\n", filepath.Base(p.Path), exitText(<-done))
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// ctl runs turbctl and returns its standard output.
func (d *demo) ctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "turbctl"), append(d.turbctl, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("turbctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// show runs turbctl and prints its human output, indented.
func (d *demo) show(ctx context.Context, args ...string) error {
	out, err := d.ctl(ctx, args...)
	fmt.Printf("  $ turbctl %s\n", strings.Join(args, " "))
	printIndented(os.Stdout, out)
	return err
}

func printIndented(w io.Writer, b []byte) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintln(w, "    "+line)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitFor polls f every 100ms until it succeeds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
