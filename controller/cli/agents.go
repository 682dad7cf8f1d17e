package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/selector"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) agentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List and inspect agents",
		Args:  noSubcommand,
		RunE:  missingSubcommand,
	}
	var (
		limit  int
		selStr string
	)
	ls := &cobra.Command{
		Use:     "ls [ID]...",
		Aliases: []string{"list"},
		Short:   "List the agents the controller knows, all or those a selector or a list of IDs picks",
		Long: `List the agents the controller knows, by ID.

--select keeps the agents whose labels match a label selector, in the
Kubernetes grammar (docs/selectors.md):

  role=web           role==web         role!=web (or no role label)
  zone in (a,b)      zone notin (a,b)  canary (has the label)  !canary
  role=web,zone=a    (a comma is "and")

IDs given as arguments keep only those agents (and, with --select, only
those of them that match). An ID that is not registered is not listed.
The controller filters before it pages, so --limit counts matching agents.`,
		Args: cobra.ArbitraryArgs,
		RunE: runE(func(cmd *cobra.Command, ids []string) error {
			if limit < 0 {
				return invalidf("--limit must be 0 (no limit) or more, got %d", limit)
			}
			// Checked here too, so that a typo is named at once, with the
			// flag's name, and the controller never sees the call.
			if _, err := selector.Parse(selStr); err != nil {
				return invalidf("--select: %v", err)
			}
			if len(ids) > limits.MaxSelectIDs {
				return invalidf("agents ls takes at most %d IDs, got %d", limits.MaxSelectIDs, len(ids))
			}
			return a.withClient(func(c *client) error {
				if err := a.readLivenessFromLeader(cmd.Context(), c); err != nil {
					return err
				}
				all := &turbulencev1.ListAgentsResponse{}
				err := c.pages(cmd.Context(), limit, limits.MaxPageAgents, func(ctx context.Context, token string, size uint32) (int, string, error) {
					resp, err := c.api.ListAgents(ctx, &turbulencev1.ListAgentsRequest{PageToken: token, PageSize: size, Selector: selStr, Ids: ids})
					all.Agents = append(all.Agents, resp.GetAgents()...)
					return len(resp.GetAgents()), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				return a.printAgents(all)
			})
		}),
	}
	ls.Flags().StringVar(&selStr, "select", "", "only agents whose labels match this label selector (role=web,zone in (a,b))")
	ls.Flags().IntVar(&limit, "limit", 0, "stop after this many agents (0 = all)")
	cmd.AddCommand(a.consistentFlag(ls))
	cmd.AddCommand(a.consistentFlag(&cobra.Command{
		Use:   "show ID",
		Short: "Show one agent: facts, capabilities, connection",
		Args:  exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(c *client) error {
				if err := a.readLivenessFromLeader(cmd.Context(), c); err != nil {
					return err
				}
				var ag *turbulencev1.Agent
				err := c.call(cmd.Context(), func(ctx context.Context) (err error) {
					ag, err = c.api.GetAgent(ctx, &turbulencev1.GetAgentRequest{Id: args[0]})
					return err
				})
				if err != nil {
					return err
				}
				if !a.json() {
					a.hostMetrics, a.hostMetricsWhy = a.latestMetrics(cmd.Context(), c, args[0])
				}
				return a.printAgent(ag)
			})
		}),
	}))
	cmd.AddCommand(a.agentsMetricsCommand())
	return cmd
}

func (a *app) printAgents(resp *turbulencev1.ListAgentsResponse) error {
	if a.json() {
		return writeJSONList(a.stdout, resp, len(resp.GetAgents()))
	}
	return agentsTable(a.stdout, a.env.now(), resp.GetAgents(), a.livenessUnknown)
}

func (a *app) printAgent(ag *turbulencev1.Agent) error {
	if a.json() {
		return writeJSON(a.stdout, ag)
	}
	tw := table(a.stdout)
	agentDetail(tw, a.env.now(), ag, a.livenessUnknown)
	metricsRows(tw, a.env.now(), a.hostMetrics, a.hostMetricsWhy)
	return tw.Flush()
}

// agentsTable prints the agents; unknown says that the controller that
// answered is not the leader, which alone knows who is connected.
func agentsTable(w io.Writer, now time.Time, agents []*turbulencev1.Agent, unknown bool) error {
	tw := table(w)
	row(tw, "ID", "CONNECTED", "LAST SEEN", "HOSTNAME", "OS/ARCH", "CPUS", "MEMORY", "KINDS", "LOCAL HALT", "LABELS")
	for _, ag := range agents {
		f := ag.GetFacts()
		row(tw, ag.GetId(), connected(ag, unknown), relative(ag.GetLastSeen(), now),
			orNone(f.GetHostname()), osArch(f), cpus(f), memory(f),
			orNone(strings.Join(ag.GetCapabilities().GetFaultKinds(), ",")),
			yesNo(ag.GetLocallyHalted()), labels(ag.GetLabels()))
	}
	return tw.Flush()
}

// agentDetail writes an agent's rows to tw; the caller flushes it.
func agentDetail(tw io.Writer, now time.Time, ag *turbulencev1.Agent, unknown bool) {
	f := ag.GetFacts()
	row(tw, "ID:", ag.GetId())
	row(tw, "Connected:", connected(ag, unknown))
	row(tw, "Last seen:", absolute(ag.GetLastSeen(), now))
	row(tw, "Registered:", absolute(ag.GetRegisteredAt(), now))
	row(tw, "Halted locally:", localHalt(ag))
	row(tw, "Labels:", labels(ag.GetLabels()))
	row(tw, "Hostname:", orNone(f.GetHostname()))
	row(tw, "OS/arch:", osArch(f))
	row(tw, "Kernel:", orNone(f.GetKernel()))
	row(tw, "CPUs:", cpus(f))
	row(tw, "Memory:", memory(f))
	row(tw, "Agent version:", orNone(f.GetAgentVersion()))
	row(tw, "Cert expires:", certExpiry(f.GetCertNotAfter(), now))
	row(tw, "Fault kinds:", orNone(strings.Join(ag.GetCapabilities().GetFaultKinds(), ",")))
	row(tw, "Kernel features:", orNone(strings.Join(ag.GetCapabilities().GetKernelFeatures(), ",")))
}

// localHalt says whether the host's operator halted the agent
// (`turbulence-agent halt`, invariant 5), and where it can be lifted: not
// by turbctl resume, only on the host itself.
func localHalt(ag *turbulencev1.Agent) string {
	if !ag.GetLocallyHalted() {
		return "no"
	}
	host := ag.GetFacts().GetHostname()
	if host == "" {
		host = "the host"
	}
	return "yes (faults refused; lift it on " + host + " with turbulence-agent resume)"
}

func osArch(f *turbulencev1.HostFacts) string {
	if f.GetOs() == "" && f.GetArch() == "" {
		return none
	}
	return fmt.Sprintf("%s/%s", orNone(f.GetOs()), orNone(f.GetArch()))
}

func cpus(f *turbulencev1.HostFacts) string {
	if f.GetCpus() == 0 {
		return none
	}
	return strconv.FormatUint(uint64(f.GetCpus()), 10)
}

func memory(f *turbulencev1.HostFacts) string {
	if f.GetMemoryBytes() == 0 {
		return none
	}
	return bytesIEC(f.GetMemoryBytes())
}
