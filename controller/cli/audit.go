package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
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
		actor, action, since, until string
		limit                       int
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
100 000 records; turbctl follows its pages (up to 1000 records each)
until the end or --limit.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return invalidf("--limit must be 0 (no limit) or more, got %d", limit)
			}
			now := a.env.now()
			req := &turbulencev1.ListAuditRequest{Actor: actor, Action: action}
			var err error
			if req.Since, err = pointInTime("--since", since, now); err != nil {
				return err
			}
			if req.Until, err = pointInTime("--until", until, now); err != nil {
				return err
			}
			return a.withClient(func(c *client) error {
				all := &turbulencev1.ListAuditResponse{}
				err := c.pages(cmd.Context(), limit, limits.MaxPageAudit, func(ctx context.Context, token string, size uint32) (int, string, error) {
					page := proto.CloneOf(req)
					page.PageToken, page.PageSize = token, size
					resp, err := c.api.ListAudit(ctx, page)
					all.Entries = append(all.Entries, resp.GetEntries()...)
					return len(resp.GetEntries()), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				return a.printAudit(all)
			})
		}),
	}
	f := ls.Flags()
	f.StringVar(&actor, "actor", "", "only records by this identity (role/name, e.g. admin/alice)")
	f.StringVar(&since, "since", "", "only records at or after this time (RFC 3339, or a duration ago: 24h)")
	f.StringVar(&until, "until", "", "only records before this time (RFC 3339, or a duration ago)")
	f.StringVar(&action, "action", "", "only records of this action (fault.apply, fleet.halt…)")
	f.IntVar(&limit, "limit", 0, "stop after this many records, newest first (0 = all)")
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
