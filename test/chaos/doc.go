// Package chaos is chaos on Turbulence itself (docs/design.md, testing level
// 4): real turbulence-controller and turbulence-agent processes, each in
// a network namespace the test makes (a bridge on 198.18.1.0/24; nothing
// outside 198.18.0.0/15), hurt while faults run and clients keep writing,
// with the safety properties checked and the timings reported.
//
// The set-up (cluster_linux_test.go, agents_linux_test.go): three
// controllers formed by --bootstrap-expect, with --lease-ttl 10s and
// --heartbeat-interval 1s; two agents configured with all three
// controllers' addresses, with mTLS certificates from the test's CA, a
// local policy that allows small CPU faults only, and a state directory
// and local socket of their own; each agent holds a CPU fault of 3 % of
// one core for 30 minutes, so that only a revert can end it while a test
// runs. Each fault's worker process is held by a pidfd.
//
// TestPrivilegedControllerCluster_KillAndPartition proves, with figures:
//
//   - kill -9 of the leader, which holds the agents' sessions: a new
//     leader within seconds, a write through a survivor acknowledged at
//     once, both agents re-attached to the new leader (the leader lists
//     them connected and each agent names it as its controller) well
//     within the lease TTL; the killed node rejoins from its data and
//     catches up;
//   - nftables partition of the leader from the other two, inside its
//     namespace: the majority elects, the agents follow it, the minority
//     refuses writes (Unavailable after its hold time) and gives up the
//     leadership, and nothing it was asked lands;
//   - zero reverts through both storms (invariant 2: a leader change
//     shorter than the lease TTL reverts nothing): the controller records
//     each agent fault ACTIVE (consistent read), the agent holds it with
//     the very same worker, that worker process is alive (pidfd), and no
//     revert is recorded anywhere: no fault.reverting, fault.reverted or
//     fault.failed event, no revert or halt in the audit log, no "fault
//     reverted" in either agent's log;
//   - zero lost writes, and a linearizable history: three clients (plus
//     the test itself) apply faults with fresh request IDs, list every
//     fault and read single faults, with consistent reads, through random
//     nodes, retrying each operation to a definite answer with the same
//     request ID; the client-side history, with call and return times, is
//     checked with porcupine against internal/linearize.Model (every
//     acknowledged fault is there afterwards, a retry never makes a second
//     fault, no read goes back in time); afterwards every node holds
//     exactly the acknowledged faults. A failed check names the operation
//     it cannot place and keeps porcupine's visualisation.
//
// TestPrivilegedControllerCluster_AllDownAgentsRevert proves invariant 2
// the other way: with every controller killed at once, each agent reverts
// its fault by itself within lease TTL + 1 s of the kill (measured to the
// exit of the worker process, seen on its pidfd, not polled), and not
// before its lease could have run out; the agent logs the revert with the
// reason "lease expired" and keeps running, waiting for a controller.
//
// TestPrivilegedAgentKilled_NothingOutlivesItsDeadlineOrLease proves
// invariants 3 and 7 with one controller and real agents: another state
// directory's cleanup and a second agent starting in the same namespace
// leave a live agent's marks alone; an agent holding a fault of every kind
// (CPU, memory, disk I/O, disk fill, bandwidth, partition) SIGKILLed and
// never restarted leaves nothing on the host past each deadline + 1 s, and
// one whose faults are far from their deadline leaves nothing past its
// lease TTL + 1 s; both sampled from the host itself (pidfds, netlink,
// nftables, the filesystem), with the time each kind outlived its deadline
// logged.
//
// TestPrivilegedChaosCampaign is the seeded campaign (issue 18;
// docs/reliability.md has its figures): three controllers, each with its
// data directory on a tmpfs of its own, and six agents
// (lab_linux_test.go), each agent with a tmpfs of its own for disk faults
// and rack labels; clients (workload_linux_test.go) apply faults of every
// kind this kernel takes without the VM lab (cpu, memory, disk_fill,
// disk_io, partition), alone and as fault groups (a selector, a count or
// a percentage, a seed), revert them, halt and resume the fleet, list and
// read, and run short experiments (experiments_linux_test.go: a step or
// two on a selector, an HTTP probe of a service the test serves in the
// hub, some aborted by hand or by a probe made to fail), recording every
// call; a nemesis (nemesis_linux_test.go) drawn
// from the seed with math/rand/v2's PCG kills, partitions and freezes
// controllers, fills a controller's data disk, cuts agents off (aimed at
// agents holding faults only their lease can end), kills them (restarted
// or not), freezes them past their lease, and starves the machine of CPU;
// a sampler (sampler_linux_test.go) reads the hosts themselves every
// 100 ms: worker and guardian processes by the owner and fault ID in
// their argv, the agents' nftables tables, the marked directories on
// their tmpfs. The checks (checker_linux_test.go) are those of
// docs/reliability.md. The seed comes from CHAOS_SEED (random when unset,
// and logged), the length from CHAOS_DURATION (60 s when unset, for `make
// test`); `make chaos` runs a long one. The same seed draws the same
// events and operations in the same order; the daemons' timing, and so
// which agents a cut-off can aim at, does not replay.
//
// TestPrivilegedControllerCluster_FullDisks fills controllers' data
// disks (a tmpfs each) to the last block while writing: with the
// leader's full the cluster keeps writing and reading, with two of three
// full every write is answered Unavailable or DeadlineExceeded and no
// other error, and once the space is back every open request succeeds
// once and every node holds every acknowledged write, and nothing else.
//
// The tests are privileged (TestPrivileged…, internal/testutil.
// RequirePrivileged: skipped without root, failed instead under
// TURBULENCE_REQUIRE_PRIVILEGED=1) and Linux-only; the package has
// nothing else but TestExperimentSpec_Valid, which checks the files the
// workload draws against the controller's own parser. The binaries are built once per run from this checkout. On a
// failure, every daemon's log is kept in a turbulence-chaos-logs-*
// directory under the system's temporary directory, and a controller that
// ignores SIGTERM is sent SIGQUIT first, so that its log holds its
// goroutines.
package chaos
