//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// dialWait bounds how long the driver tries to reach the host.
const dialWait = 5 * time.Minute

// locks are the files the host asked the driver to hold locked, by path;
// requests are served one at a time, so no mutex.
var locks = map[string]*os.File{}

// drive dials the host and answers its requests until it hangs up.
func drive() error {
	raw, err := os.ReadFile(vmlab.SysDriverConfig)
	if err != nil {
		return err
	}
	var cfg vmlab.SysConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	var conn net.Conn
	deadline := time.Now().Add(dialWait)
	for {
		conn, err = net.DialTimeout("tcp", cfg.Host, 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dial the host %s: %w", cfg.Host, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer func() { _ = conn.Close() }()
	r := bufio.NewReader(conn)
	enc := json.NewEncoder(conn)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		var req vmlab.Request
		var resp vmlab.Response
		if jerr := json.Unmarshal(line, &req); jerr != nil {
			// The stream cannot be trusted past a line it cannot read.
			return fmt.Errorf("decode request: %w", jerr)
		}
		var data []byte
		if req.Size > 0 {
			data = make([]byte, req.Size)
			if _, err := io.ReadFull(r, data); err != nil {
				return fmt.Errorf("read %d bytes for %s: %w", req.Size, req.Path, err)
			}
		}
		resp = handle(req, data)
		if err := enc.Encode(&resp); err != nil {
			return err
		}
	}
}

func handle(req vmlab.Request, data []byte) vmlab.Response {
	switch req.Op {
	case "exec":
		return run(req)
	case "procs":
		ps, err := procs()
		if err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		return vmlab.Response{Procs: ps}
	case "write":
		if err := os.MkdirAll(filepath.Dir(req.Path), 0o755); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		if err := os.WriteFile(req.Path, data, os.FileMode(req.Mode)); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		// WriteFile keeps an existing file's mode: set the asked one.
		if err := os.Chmod(req.Path, os.FileMode(req.Mode)); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		return vmlab.Response{}
	case "lock":
		if _, held := locks[req.Path]; held {
			return vmlab.Response{Error: req.Path + " is locked already"}
		}
		if err := os.MkdirAll(filepath.Dir(req.Path), 0o700); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		f, err := os.OpenFile(req.Path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			_ = f.Close()
			return vmlab.Response{Error: fmt.Sprintf("flock %s: %v", req.Path, err)}
		}
		locks[req.Path] = f
		return vmlab.Response{}
	case "unlock":
		f, held := locks[req.Path]
		if !held {
			return vmlab.Response{Error: req.Path + " is not locked"}
		}
		delete(locks, req.Path)
		if err := f.Close(); err != nil { // closing drops the flock
			return vmlab.Response{Error: err.Error()}
		}
		return vmlab.Response{}
	case "clock":
		// clock_settime, as date(1) or an NTP step does: only the wall
		// clock moves; CLOCK_MONOTONIC and CLOCK_BOOTTIME do not.
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		ts = unix.NsecToTimespec(ts.Nano() + req.StepMS*int64(time.Millisecond))
		if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return vmlab.Response{Error: fmt.Sprintf("clock_settime: %v", err)}
		}
		return vmlab.Response{RealtimeNS: ts.Nano()}
	case "tables":
		c, err := nftables.New()
		if err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return vmlab.Response{Error: fmt.Sprintf("list nftables tables: %v", err)}
		}
		var names []string
		for _, t := range ts {
			names = append(names, t.Name)
		}
		return vmlab.Response{Tables: names}
	case "monotonic":
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return vmlab.Response{Error: err.Error()}
		}
		return vmlab.Response{MonotonicUS: uint64(ts.Nano() / 1000)}
	}
	return vmlab.Response{Error: fmt.Sprintf("unknown op %q", req.Op)}
}

// run executes req.Argv directly (no shell) with its timeout.
func run(req vmlab.Request) vmlab.Response {
	if len(req.Argv) == 0 {
		return vmlab.Response{Error: "exec: empty argv"}
	}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	resp := vmlab.Response{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		resp.Code = exit.ExitCode()
	default:
		resp.Error = fmt.Sprintf("%s: %v", strings.Join(req.Argv, " "), err)
		resp.Code = -1
	}
	return resp
}

// procs reads the process table from /proc.
func procs() ([]vmlab.Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []vmlab.Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone in between
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p := vmlab.Proc{PID: pid, PPID: ppid, State: f[0]}
		if cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && len(cl) > 0 {
			p.Argv = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		}
		out = append(out, p)
	}
	return out, nil
}
