package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
)

// turbctlAt runs turbctl against srv with its admin certificate.
func turbctlAt(tb testing.TB, srv *controllertest.Server, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	admin := srv.PKI.Admin
	global := []string{"--controller", srv.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key}
	var out, errOut bytes.Buffer
	code = cli.Main(append(global, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHalt_SecondHaltSaysAlreadyHalted: a halt of a halted fleet used to
// print "Reason: -" as if the second --reason had been lost (issue 17).
// It must show the reason in force and say that the fleet was already
// halted, by whom, since when, and that the new reason was not recorded.
func TestHalt_SecondHaltSaysAlreadyHalted(t *testing.T) {
	t.Parallel()
	srv := controllertest.NewServer(t, nil)
	code, _, stderr := turbctlAt(t, srv, "halt", "--reason", "SLO burn on checkout")
	if code != cli.ExitOK {
		t.Fatalf("first halt: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "already halted") {
		t.Errorf("first halt says the fleet was already halted:\n%s", stderr)
	}
	code, out, stderr := turbctlAt(t, srv, "halt", "--reason", "second thoughts")
	if code != cli.ExitOK {
		t.Fatalf("second halt: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"Reason:  SLO burn on checkout"} {
		if !strings.Contains(out, want) {
			t.Errorf("second halt's output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"already halted by admin/dev-admin since", "reason in force: SLO burn on checkout",
		`--reason "second thoughts" was not recorded`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("second halt's stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestClusterLs_DeadNodeShowsUnreachable: `cluster ls` used to show a
// dead node like a live one (issue 17). A crashed follower is still a
// member, and its row says it does not answer; the others say up.
func TestClusterLs_DeadNodeShowsUnreachable(t *testing.T) {
	t.Parallel()
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.WaitLeader(t, 15*time.Second)
	dead := c.Followers()[0]
	if err := dead.Crash(); err != nil {
		t.Fatal(err)
	}
	admin := c.PKI.Admin
	var out, errOut bytes.Buffer
	code := cli.Main([]string{"--controller", leader.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key, "cluster", "ls"}, &out, &errOut)
	if code != cli.ExitOK {
		t.Fatalf("cluster ls: exit %d\n%s", code, errOut.String())
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "STATE") {
		t.Fatalf("no STATE column:\n%s", out.String())
	}
	for _, n := range []*controllertest.Node{leader, dead} {
		var line string
		for _, l := range lines {
			if strings.HasPrefix(l, n.Config.NodeID+" ") {
				line = l
			}
		}
		want := "up"
		if n == dead {
			want = "unreachable"
		}
		if !strings.Contains(line, " "+want) {
			t.Errorf("node %s: row %q, want %q\n%s", n.Config.NodeID, line, want, out.String())
		}
	}
}

// TestAgentsLs_FromFollowerShowsLiveness: only the leader knows who is
// connected; `agents ls` and `agents show` asked of a follower used to
// show every agent as not connected (issue 17). turbctl now reads them
// through the leader when the node asked is a follower.
func TestAgentsLs_FromFollowerShowsLiveness(t *testing.T) {
	t.Parallel()
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.WaitLeader(t, 15*time.Second)
	ag, err := controllertest.StartFollowingAgent(controllertest.AgentName, c.Addrs(), c.PKI.Agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.Stop)
	controllertest.WaitFor(t, 15*time.Second, "the agent to attach to the leader", func() bool {
		return leader.Controller.ConnectedAgents() == 1
	})
	follower := c.Followers()[0]
	admin := c.PKI.Admin
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		global := []string{"--controller", follower.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key}
		if code := cli.Main(append(global, args...), &out, &errOut); code != cli.ExitOK {
			t.Fatalf("turbctl %v: exit %d\n%s", args, code, errOut.String())
		}
		return out.String()
	}
	if out := run("agents", "ls"); !strings.Contains(out, controllertest.AgentName+"  yes") {
		t.Errorf("agents ls from follower %s does not show the agent connected:\n%s", follower.Config.NodeID, out)
	}
	out := run("agents", "show", controllertest.AgentName)
	var line string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, "Connected:") {
			line = l
		}
	}
	if strings.TrimSpace(strings.TrimPrefix(line, "Connected:")) != "yes" {
		t.Errorf("agents show from follower %s: %q, want Connected: yes\n%s", follower.Config.NodeID, line, out)
	}
}
