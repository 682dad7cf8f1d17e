package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Host metrics are the leader's soft state (docs/hostmetrics.md): the
// controller asked forwards GetAgentMetrics to the leader itself, so
// neither command below needs --consistent or the liveness fallback.

// agentsMetricsCommand is `agents metrics ID [--since 5m]`.
func (a *app) agentsMetricsCommand() *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "metrics ID",
		Short: "Show the host metrics the leader keeps for one agent, oldest first",
		Long: `Show the host metrics an agent reported in its heartbeats, as the raft
leader keeps them: one sample per heartbeat over a short window (10
minutes by default, the controller's --host-metrics-window). The series
is not replicated: after a leader change it starts again.

--since keeps the samples of that last stretch of time (by this
machine's clock). A figure the agent could not read is shown as -.`,
		Args: exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if since < 0 {
				return invalidf("--since must be a duration of 0 (the whole window) or more, got %v", since)
			}
			req := &turbulencev1.GetAgentMetricsRequest{AgentId: args[0]}
			if since > 0 {
				req.Since = timestamppb.New(a.env.now().Add(-since))
			}
			return a.withClient(func(c *client) error {
				var resp *turbulencev1.GetAgentMetricsResponse
				err := c.callRead(cmd.Context(), false, func(ctx context.Context) (err error) {
					resp, err = c.api.GetAgentMetrics(ctx, req)
					return err
				})
				if err != nil {
					return err
				}
				return a.printAgentMetrics(resp)
			})
		}),
	}
	cmd.Flags().DurationVar(&since, "since", 0, "only the samples of this last stretch of time, e.g. 5m (default: the whole window kept)")
	return cmd
}

func (a *app) printAgentMetrics(resp *turbulencev1.GetAgentMetricsResponse) error {
	if a.json() {
		return writeJSON(a.stdout, resp)
	}
	return metricsTable(a.stdout, resp)
}

// metricsTable prints one row per sample.
func metricsTable(w io.Writer, resp *turbulencev1.GetAgentMetricsResponse) error {
	if len(resp.GetSamples()) == 0 {
		_, err := fmt.Fprintf(w, "no host metrics for %s in the window the leader keeps (%s): the agent may be disconnected, older than this feature, or the leader new\n",
			cell(resp.GetAgentId()), duration(resp.GetWindow()))
		return err
	}
	tw := table(w)
	row(tw, "TIME", "CPU", "MEMORY", "LOAD1", "LOAD5", "LOAD15", "DISK USED", "DISK I/O", "NETWORK")
	for _, s := range resp.GetSamples() {
		row(tw, stamp(s.GetSampledAt()), pct(s.CpuPercent), pct(s.MemoryUsedPercent),
			load(s.Load1), load(s.Load5), load(s.Load15), pct(s.DiskUsedPercent),
			bps(s.DiskIoBytesPerSecond), bps(s.NetworkBytesPerSecond))
	}
	return tw.Flush()
}

// latestMetrics asks for the agent's newest sample for `agents show`. A
// controller that cannot answer does not fail the command: the facts
// are still worth showing; why the metrics are missing is said instead.
func (a *app) latestMetrics(ctx context.Context, c *client, id string) (*turbulencev1.HostMetricsSample, string) {
	var resp *turbulencev1.GetAgentMetricsResponse
	err := c.callRead(ctx, false, func(ctx context.Context) (err error) {
		resp, err = c.api.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: id, LatestOnly: true})
		return err
	})
	switch {
	case status.Code(err) == codes.Unimplemented || status.Code(unwrapRPC(err)) == codes.Unimplemented:
		return nil, "unknown (this controller does not serve them)"
	case err != nil:
		return nil, "unknown (" + status.Convert(unwrapRPC(err)).Message() + ")"
	case len(resp.GetSamples()) == 0:
		return nil, "none yet (none in the leader's window)"
	}
	return resp.GetSamples()[len(resp.GetSamples())-1], ""
}

// unwrapRPC returns the gRPC error inside turbctl's wrapping, if any.
func unwrapRPC(err error) error {
	for e := err; e != nil; {
		if _, ok := status.FromError(e); ok {
			return e
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return err
}

// metricsRows adds the latest host metrics to an agent's detail.
func metricsRows(w io.Writer, now time.Time, s *turbulencev1.HostMetricsSample, why string) {
	if s == nil {
		if why != "" {
			row(w, "Host metrics:", why)
		}
		return
	}
	row(w, "Host metrics:", absolute(s.GetSampledAt(), now))
	row(w, "  CPU busy:", pct(s.CpuPercent))
	mem := pct(s.MemoryUsedPercent)
	if s.MemoryUsedBytes != nil {
		mem += " (" + bytesIEC(uint64(s.GetMemoryUsedBytes())) + ")"
	}
	row(w, "  Memory used:", mem)
	row(w, "  Load 1/5/15m:", load(s.Load1)+" "+load(s.Load5)+" "+load(s.Load15))
	row(w, "  Disk used:", pct(s.DiskUsedPercent)+" (the fullest watched filesystem)")
	row(w, "  Disk I/O:", bps(s.DiskIoBytesPerSecond))
	row(w, "  Network:", bps(s.NetworkBytesPerSecond))
}

func pct(v *float64) string {
	if v == nil {
		return none
	}
	return strconv.FormatFloat(*v, 'f', 1, 64) + "%"
}

func load(v *float64) string {
	if v == nil {
		return none
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}

// bps renders bytes per second with binary units: "1.5MiB/s".
func bps(v *float64) string {
	if v == nil || math.IsNaN(*v) || *v < 0 {
		return none
	}
	return bytesIEC(uint64(math.Round(*v))) + "/s"
}
