package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) eventsCommand() *cobra.Command {
	var (
		follow bool
		after  uint64
		limit  int
		// Filters of the listing (not of --follow).
		agentID, eventType string
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the fleet's event log",
		Long: `Print the replicated event log, oldest first, from after sequence --after.

With --follow, keep printing new events as they happen until interrupted;
with -o json each event is then one JSON object per line. If the stream
breaks after events arrived (e.g. the controller restarts), turbctl
reconnects from the last sequence it printed for up to --timeout.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if follow && (agentID != "" || eventType != "") {
				return usagef("--agent and --type filter the listing; --follow prints every event")
			}
			if follow && a.consistent {
				return usagef("--consistent and --follow exclude each other: --follow streams from the controller asked; use --consistent for a one-off read")
			}
			return a.withClient(func(c *client) error {
				if follow {
					return a.follow(cmd.Context(), c, after)
				}
				if limit < 0 {
					return invalidf("--limit must be 0 (no limit) or more, got %d", limit)
				}
				resp := &turbulencev1.ListEventsResponse{}
				err := c.pages(cmd.Context(), limit, limits.MaxPageEvents, func(ctx context.Context, token string, size uint32) (int, string, error) {
					page, err := c.api.ListEvents(ctx, &turbulencev1.ListEventsRequest{
						AfterSequence: after, PageToken: token, PageSize: size, AgentId: agentID, Type: eventType,
					})
					resp.Events = append(resp.Events, page.GetEvents()...)
					return len(page.GetEvents()), page.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSONList(a.stdout, resp, len(resp.GetEvents()))
				}
				return eventTable(a.stdout, resp.GetEvents())
			})
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	cmd.Flags().Uint64Var(&after, "after", 0, "print only events with a sequence number above this")
	cmd.Flags().StringVar(&agentID, "agent", "", "only events about this agent (without --follow)")
	cmd.Flags().StringVar(&eventType, "type", "", "only events of this type, or of a family ending in a dot: fault. (without --follow)")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many events (without --follow; 0 = all the controller keeps)")
	return a.consistentFlag(cmd)
}

// follow streams events until ctx is done (a normal end: exit 0) or the
// controller ends the stream.
func (a *app) follow(ctx context.Context, c *client, after uint64) error {
	if !a.json() {
		eventHeader(a.stdout)
	}
	last, seen := after, false
	var failingSince time.Time
	backoff := a.env.backoff
	for {
		got, err := a.watch(ctx, c, &last)
		seen = seen || got
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			return nil // the controller ended the stream
		case status.Code(err) != codes.Unavailable || !seen:
			return c.wrap(err)
		}
		if got || failingSince.IsZero() {
			failingSince, backoff = time.Now(), a.env.backoff
		}
		if time.Since(failingSince) > a.timeout {
			return c.wrap(err)
		}
		fmt.Fprintf(a.stderr, "turbctl: event stream lost (%v); reconnecting after sequence %d\n", status.Convert(err).Message(), last)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watch runs one WatchEvents stream from *last and advances *last with
// every event printed. It reports whether any event arrived.
func (a *app) watch(ctx context.Context, c *client, last *uint64) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.WatchEvents(ctx, &turbulencev1.WatchEventsRequest{AfterSequence: *last})
	if err != nil {
		return false, err
	}
	got := false
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = true
		if ev.GetSequence() > *last {
			*last = ev.GetSequence()
		}
		if a.json() {
			if err := writeJSONLine(a.stdout, ev); err != nil {
				return got, err
			}
			continue
		}
		eventRow(a.stdout, ev)
	}
}

// eventTable prints a finished listing, its columns as wide as their
// widest cell, so that nothing is misaligned whatever the IDs.
func eventTable(w io.Writer, evs []*turbulencev1.Event) error {
	tw := table(w)
	row(tw, eventColumns...)
	for _, ev := range evs {
		row(tw, eventCells(ev)...)
	}
	return tw.Flush()
}

// eventColumns are the headers of the event table.
var eventColumns = []string{"SEQ", "TIME", "TYPE", "AGENT", "FAULT", "MESSAGE"}

// eventCells is one event as table cells.
func eventCells(ev *turbulencev1.Event) []string {
	return []string{fmt.Sprint(ev.GetSequence()), stamp(ev.GetTime()), ev.GetType(),
		orNone(ev.GetAgentId()), orNone(ev.GetFaultId()), ev.GetMessage()}
}

// --follow prints each event as it arrives, so its columns cannot be
// sized from the data: they are fixed, the FAULT column as wide as the
// controller's fault IDs ("f-" and 12 hex digits, controller/controlapi)
// and the TYPE column as the longest event type (fault.unconfirmed). A
// longer cell (an agent named after a long host name) pushes the rest
// of its line right, but the header still sits over the first columns.
const eventFormat = "%-6s  %-20s  %-18s  %-16s  %-14s  %s\n"

func eventHeader(w io.Writer) {
	fmt.Fprintf(w, eventFormat, toAny(eventColumns)...)
}

func eventRow(w io.Writer, ev *turbulencev1.Event) {
	cells := eventCells(ev)
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintf(w, eventFormat, toAny(cells)...)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
