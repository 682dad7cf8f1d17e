package raftnode

import (
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/raft"
)

// addressSep separates the raft and gRPC parts of a ServerAddress. A slash
// appears in no host:port form (IPv6 literals included) and needs no
// quoting in a shell.
const addressSep = "/"

// Address is where one controller is reached: its raft port and its gRPC
// API. It is stored in raft's configuration as the opaque ServerAddress
// "raft/grpc" (for example "10.0.0.1:7421/10.0.0.1:7420"). Raft never
// interprets ServerAddress; only our stream layer does, and it dials the
// raft part. Carrying the gRPC address there means every node learns the
// leader's gRPC address from raft itself (AppendEntries names the leader),
// which is what write forwarding and agent redirects need, without a
// replicated record of its own in the FSM.
type Address struct {
	Raft string
	GRPC string
}

// String encodes the address as raft stores it. Without a gRPC part it is
// the bare raft address.
func (a Address) String() string {
	if a.GRPC == "" {
		return a.Raft
	}
	return a.Raft + addressSep + a.GRPC
}

// ParseAddress decodes "raft" or "raft/grpc". Both parts must be
// host:port.
func ParseAddress(s string) (Address, error) {
	r, g, _ := strings.Cut(s, addressSep)
	a := Address{Raft: r, GRPC: g}
	if _, _, err := net.SplitHostPort(r); err != nil {
		return Address{}, fmt.Errorf("raft address %q: %w", r, err)
	}
	if g != "" {
		if _, _, err := net.SplitHostPort(g); err != nil {
			return Address{}, fmt.Errorf("gRPC address %q: %w", g, err)
		}
	}
	return a, nil
}

// addressOf decodes a ServerAddress raft handed back, leniently: one this
// package did not write is taken as a bare raft address.
func addressOf(sa raft.ServerAddress) Address {
	r, g, _ := strings.Cut(string(sa), addressSep)
	return Address{Raft: r, GRPC: g}
}

// advertised is the net.Addr the stream layer reports as its own, so that
// raft's transport puts the composite address into every RPC header.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }
