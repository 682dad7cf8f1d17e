package chaos

import (
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// fullDiskWrites is how many writes go through the cluster while a
// disk is full.
const fullDiskWrites = 20

// twoFullWrites bounds the writes sent with two disks full before one
// must be refused.
const twoFullWrites = 300

// TestPrivilegedControllerCluster_FullDisks fills controllers' data disks
// (a tmpfs each) to the last block while clients write, and checks what a
// client sees. With the leader's disk full, the cluster keeps writing:
// every write through any node gets an answer, acknowledged or
// Unavailable (an open outcome, retried with the same request ID until
// acknowledged), never another error, and every node answers consistent
// reads. With two disks of three full, no write can commit: each is
// answered Unavailable or DeadlineExceeded, never an error that claims
// more. Once the space is back those requests succeed, the filled nodes
// catch up, and every node holds every acknowledged write, once, and
// nothing else. How long writes waited, and what the refusals said, is
// logged, not asserted.
func TestPrivilegedControllerCluster_FullDisks(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := newProcCluster(t, 3)
	for _, n := range c.nodes {
		c.dataOnTmpfs(n, labDataBytes)
		c.start(n)
	}
	leader := c.waitLeader(c.nodes, startLimit)
	c.registerAgent(leader)
	var acked []string
	// write runs one request to an answer: an open outcome is retried
	// with the same request ID through the next node, up to limit.
	write := func(req string, limit time.Duration, via ...*procNode) (string, time.Duration, error) {
		t.Helper()
		start := time.Now()
		for i := 0; ; i++ {
			id, err := c.applyFault(via[i%len(via)], req)
			if err == nil || !linearize.Retryable(err) || time.Since(start) > limit {
				return id, time.Since(start), err
			}
			if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
				t.Errorf("write %s through %s = %v; want Unavailable or DeadlineExceeded while a disk is full", req, via[i%len(via)].id, err)
			}
			pauseFor(200 * time.Millisecond) // between retries, not synchronisation
		}
	}
	for i := range 3 {
		id, _, err := write(fmt.Sprintf("before-%d", i), callLimit, leader)
		if err != nil {
			t.Fatalf("write before the fill: %v", err)
		}
		acked = append(acked, id)
	}

	// The leader's disk full: the cluster keeps writing and reading.
	full1, took, err := fillDisk(leader.dataDir, 0)
	if err != nil {
		t.Fatalf("fill %s's data disk: %v", leader.id, err)
	}
	logFrom := fileSize(leader.logPath)
	t.Logf("filled %s's data disk, the leader's (%d KiB); writing through every node", leader.id, took>>10)
	var slowest time.Duration
	for i := range fullDiskWrites {
		id, took, err := write(fmt.Sprintf("leader-full-%d", i), 2*time.Minute, c.nodes[i%3], c.nodes[(i+1)%3], c.nodes[(i+2)%3])
		if err != nil {
			t.Fatalf("write %d while %s's disk is full: %v", i, leader.id, err)
		}
		acked = append(acked, id)
		slowest = max(slowest, took)
	}
	for _, n := range c.nodes {
		var err error
		if !poll(electionLimit, func() bool { _, err = listFaults(&lab{c: c}, n); return err == nil }) {
			t.Errorf("no consistent read through %s for %s while %s's disk is full: %v", n.id, electionLimit, leader.id, err)
		}
	}
	t.Logf("%d writes acknowledged while %s's disk was full, the slowest after %s (retries included); %s was elected %d times while full and logged the full disk %d times",
		fullDiskWrites, leader.id, slowest.Round(time.Millisecond), leader.id,
		countLines(leader.logPath, logFrom, `msg="entering leader state"`), countLines(leader.logPath, logFrom, "no space left on device"))

	// Two disks of three full: nothing can commit, and the answers say
	// no more than that.
	second := c.others(leader)[0]
	full2, _, err := fillDisk(second.dataDir, 0)
	if err != nil {
		t.Fatalf("fill %s's data disk: %v", second.id, err)
	}
	// The log store first fits entries in pages its files hold already:
	// write until one is refused.
	var refused []string
	for i := 0; i < twoFullWrites && len(refused) == 0; i++ {
		n := c.nodes[i%3]
		req := fmt.Sprintf("two-full-%d", i)
		start := time.Now()
		id, err := c.applyFault(n, req)
		switch code := status.Code(err); {
		case err == nil:
			acked = append(acked, id)
		case code == codes.Unavailable || code == codes.DeadlineExceeded:
			refused = append(refused, req)
			t.Logf("write %d through %s with two disks full, after %s: %v", i+1, n.id, time.Since(start).Round(time.Millisecond), err)
		default:
			t.Errorf("write %s through %s with two disks full = %v; want Unavailable or DeadlineExceeded", req, n.id, err)
		}
	}
	if len(refused) == 0 {
		t.Fatalf("%d writes fitted with two disks of three full: the test could not fill them", twoFullWrites)
	}

	// Space back: the requests left open succeed, once each.
	for _, p := range []string{full1, full2} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range refused {
		id, _, err := write(req, 2*time.Minute, c.nodes...)
		if err != nil {
			t.Fatalf("request %s once the space is back: %v", req, err)
		}
		acked = append(acked, id)
	}
	for _, n := range c.nodes {
		c.waitHolds(n, acked, true)
		if !n.running() {
			t.Errorf("%s stopped: %v", n.id, n.exitErr)
		}
	}
	t.Logf("%d acknowledged writes on every node, once each; the filled nodes caught up", len(acked))
}
