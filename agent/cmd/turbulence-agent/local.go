package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/internal/termsafe"
)

// runLocal is `turbulence-agent status|halt|resume`: op is sent as is to
// the running agent over its local socket (agent/localapi). No controller
// is needed: this is the host's own kill switch (docs/design.md invariant 5).
// Exit codes: 0 done, 1 failed (including: no agent serves the socket),
// 2 usage error.
func runLocal(op string, args []string, stdout, stderr io.Writer) int {
	name := "turbulence-agent " + op
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", localapi.DefaultPath, "the agent's local socket")
	var reason, output *string
	switch op {
	case localapi.OpHalt:
		reason = fs.String("reason", "", "why you halt the agent; shown to whoever is refused a fault while it holds")
	case localapi.OpStatus:
		output = fs.String("o", "text", "output format: text or json")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		return exitUsage
	}
	if output != nil && *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "%s: -o %q: want text or json\n", name, *output)
		return exitUsage
	}
	req := localapi.Request{Op: op}
	if reason != nil {
		req.Reason = *reason
	}

	// Ctrl-C abandons the wait, not the halt: the agent finishes reverting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	resp, err := localapi.Call(ctx, *socket, req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailure
	}
	now := time.Now()
	switch op {
	case localapi.OpHalt:
		printHalt(stdout, resp)
	case localapi.OpResume:
		printResume(stdout, resp)
	case localapi.OpStatus:
		if *output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(resp.Status); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return exitFailure
			}
			return exitOK
		}
		printStatus(stdout, resp.Status, now)
	}
	return exitOK
}

func printHalt(w io.Writer, resp *localapi.Response) {
	fmt.Fprintf(w, "Halted locally: %d %s reverted.\n", len(resp.Reverted), plural(len(resp.Reverted), "fault", "faults"))
	for _, f := range resp.Reverted {
		fmt.Fprintf(w, "  %s  %s  %s (%s)\n", safe(f.ID), safe(orDash(f.Kind)), safe(f.State), safe(orDash(f.Reason)))
	}
	fmt.Fprintln(w, "New faults are refused until `turbulence-agent resume` on this host.")
}

func printResume(w io.Writer, resp *localapi.Response) {
	if resp.WasHalted {
		fmt.Fprintln(w, "Local halt lifted.")
	} else {
		fmt.Fprintln(w, "The agent was not halted locally; nothing to do.")
	}
	if resp.Status != nil && resp.Status.FleetHalted {
		fmt.Fprintln(w, "The fleet halt still holds: new faults stay refused until `turbctl resume`.")
	} else {
		fmt.Fprintln(w, "New faults are accepted.")
	}
}

func printStatus(w io.Writer, st *localapi.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Agent:\t%s\n", safe(st.AgentID))
	fmt.Fprintf(tw, "Host:\t%s\n", safe(orDash(st.Hostname)))
	controller := st.Controller
	if controller == "" {
		controller = "none (not connected)"
	}
	fmt.Fprintf(tw, "Controller:\t%s\n", safe(controller))
	fmt.Fprintf(tw, "Fleet halt:\t%s\n", yesNo(st.FleetHalted))
	local := "no"
	if st.LocallyHalted {
		local = "yes"
		if st.LocalHaltSince != nil {
			local += ", since " + st.LocalHaltSince.UTC().Format(time.RFC3339) + " (" + ago(now.Sub(*st.LocalHaltSince)) + " ago)"
		}
		local += ": " + orDefault(st.LocalHaltReason, "no reason given")
	}
	fmt.Fprintf(tw, "Local halt:\t%s\n", safe(local))
	if st.RecoveryIncomplete != "" {
		fmt.Fprintf(tw, "Recovery:\tINCOMPLETE, new faults refused: %s\n", safe(st.RecoveryIncomplete))
	}
	for i, m := range st.ForeignMarks {
		label := ""
		if i == 0 {
			label = "Not ours:"
		}
		fmt.Fprintf(tw, "%s\t%s (left alone)\n", label, m)
	}
	_ = tw.Flush()
	if len(st.Faults) == 0 {
		fmt.Fprintln(w, "Faults:      none held")
		return
	}
	fmt.Fprintln(w, "Faults:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tKIND\tSTATE\tDEADLINE\tMEASURED\tWORKER")
	for _, f := range st.Faults {
		deadline := "-"
		if f.Deadline != nil {
			deadline = "in " + ago(f.Deadline.Sub(now))
		}
		state := f.State
		if f.Degraded {
			state += " (degraded)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", safe(f.ID), safe(orDash(f.Kind)), safe(state), deadline, measured(f), pid(f.WorkerPID))
	}
	_ = tw.Flush()
}

// measured prints a fault's achieved effect (issue 3: proof of effect).
func measured(f localapi.Fault) string {
	var parts []string
	if f.MeasuredCPUPercent > 0 {
		parts = append(parts, strconv.FormatFloat(f.MeasuredCPUPercent, 'f', 1, 64)+"% cpu")
	}
	if f.ResidentBytes > 0 {
		parts = append(parts, strconv.FormatUint(f.ResidentBytes>>20, 10)+"MiB resident")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func pid(p int32) string {
	if p <= 0 {
		return "-"
	}
	return strconv.Itoa(int(p))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string { return orDefault(s, "-") }

// safe is how text that came from elsewhere (a halt reason given over the
// socket, a fault ID from the controller) is printed: with every
// character a terminal would act on escaped (internal/termsafe).
func safe(s string) string { return termsafe.String(s) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
