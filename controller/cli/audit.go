package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the replicated audit log of mutating calls",
		Args:  noSubcommand,
		RunE:  missingSubcommand,
	}
	var (
		actor, since, until string
		limit               uint32
	)
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List audit records, newest first",
		Long: `List the audit log, newest first: every mutating call (apply, revert,
halt, resume, cluster changes) with the caller's identity, the time the
controller proposed it, its request ID, a one-line summary, and, for a
write refused inside raft, the reason.

--since and --until take an RFC 3339 time (2026-03-01T12:00:00Z) or a
duration back from now (90m, 24h). The controller keeps the latest
100 000 records; one call returns at most 1000 (--limit).`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			now := a.env.now()
			req := &turbulencev1.ListAuditRequest{Actor: actor, Limit: limit}
			var err error
			if req.Since, err = pointInTime("--since", since, now); err != nil {
				return err
			}
			if req.Until, err = pointInTime("--until", until, now); err != nil {
				return err
			}
			return a.withClient(func(c *client) error {
				var resp *turbulencev1.ListAuditResponse
				err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					resp, err = c.api.ListAudit(ctx, req)
					return err
				})
				if err != nil {
					return err
				}
				return a.printAudit(resp)
			})
		}),
	}
	f := ls.Flags()
	f.StringVar(&actor, "actor", "", "only records by this identity (role/name, e.g. admin/alice)")
	f.StringVar(&since, "since", "", "only records at or after this time (RFC 3339, or a duration ago: 24h)")
	f.StringVar(&until, "until", "", "only records before this time (RFC 3339, or a duration ago)")
	f.Uint32Var(&limit, "limit", 0, "at most this many records (0 = the controller's default of 100; at most 1000)")
	cmd.AddCommand(a.consistentFlag(ls))
	return cmd
}

// pointInTime parses an RFC 3339 time or a duration back from now. An
// empty value is no bound.
func pointInTime(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return nil, invalidf("%s must be an RFC 3339 time (2026-03-01T12:00:00Z) or a positive duration ago (24h), got %q", flag, v)
	}
	return timestamppb.New(now.Add(-d)), nil
}

func (a *app) printAudit(resp *turbulencev1.ListAuditResponse) error {
	if a.json() {
		return writeJSONList(a.stdout, resp, len(resp.GetEntries()))
	}
	return auditTable(a.stdout, resp.GetEntries())
}

func auditTable(w io.Writer, entries []*turbulencev1.AuditEntry) error {
	tw := table(w)
	// RESULT goes last: a refusal's reason is the longest cell.
	row(tw, "SEQ", "TIME", "ACTOR", "ACTION", "REQUEST", "SUMMARY", "RESULT")
	for _, e := range entries {
		result := "ok"
		if e.GetError() != "" {
			result = "refused: " + e.GetError()
		}
		row(tw, fmt.Sprint(e.GetSequence()), stamp(e.GetTime()), orNone(e.GetActor()), orNone(e.GetAction()),
			orNone(e.GetRequestId()), orNone(e.GetSummary()), result)
	}
	return tw.Flush()
}
