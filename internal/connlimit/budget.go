package connlimit

import "fmt"

// Reserve is how many descriptors Budget keeps out of every listener's
// reach: raft's log store and snapshots, outbound connections (to other
// controllers, forwarding), the metrics port, the process's own files.
const Reserve = 512

// Budget splits the process's descriptor limit between listeners. want
// holds each listener's wished total cap in order; the result holds the
// caps granted: want[i] when every wish fits within nofile - Reserve,
// otherwise the first listener (the one that must never starve, raft)
// keeps its wish and the others share what is left in proportion to
// theirs. It fails when not even the first fits: the process cannot run
// safely with so few descriptors.
func Budget(nofile uint64, want ...int) ([]int, error) {
	if len(want) == 0 {
		return nil, nil
	}
	if nofile <= Reserve {
		return nil, fmt.Errorf("descriptor limit (RLIMIT_NOFILE) %d: need more than %d (the reserve) for any listener", nofile, Reserve)
	}
	avail := int(min(nofile-Reserve, 1<<30))
	sum := 0
	for _, w := range want {
		sum += w
	}
	if sum <= avail {
		return append([]int(nil), want...), nil
	}
	if want[0] >= avail {
		return nil, fmt.Errorf("descriptor limit (RLIMIT_NOFILE) %d: the first listener alone wants %d, more than the %d left after the reserve of %d; raise the limit (LimitNOFILE= in the systemd unit)", nofile, want[0], avail, Reserve)
	}
	got := []int{want[0]}
	left, rest := avail-want[0], sum-want[0]
	for _, w := range want[1:] {
		got = append(got, max(1, w*left/rest))
	}
	return got, nil
}
