// Package localapi is the agent's operator interface on its own host: a
// root-only unix socket that answers `turbulence-agent status`, `halt` and
// `resume`, and the client those subcommands use.
//
// It is kill-switch path 3 (docs/design.md invariant 5: "On a host,
// `turbulence-agent halt` does the same locally, with no controller"). It
// therefore depends on nothing but the agent's fault manager, reached
// through Backend: no controller, no network, no TLS. A halt ordered here
// reverts every fault at once and refuses new ones until a local resume; the
// controller's resume cannot lift it (see inject.LocalHalt).
//
// # Protocol
//
// One request per connection: the client writes one JSON object (Request)
// on one line, the server answers one JSON object (Response) on one line and
// closes the connection. JSON lines over a unix socket was chosen over gRPC
// on purpose: the client is a few lines of the standard library, an
// operator can drive it with `socat` in an emergency, there are no
// certificates to get wrong, and there is no streaming to need gRPC for.
// The field names are the documented contract; new fields may be added,
// none renamed.
//
//	→ {"op":"halt","reason":"disk latency on db-2"}
//	← {"ok":true,"status":{…},"reverted":[{"id":"f1","kind":"cpu","state":"reverted","reason":"local halt",…}]}
//
// # Who may talk to it
//
// Defence in depth, three layers (docs/design.md: "a local root-only unix
// socket"):
//
//  1. the socket's directory is mode 0700 and owned by the agent's user;
//     an existing directory that is not, is refused rather than changed
//     (the agent will not chmod /tmp because someone pointed it there);
//  2. the socket itself is chmod 0600 right after it is bound (between bind
//     and chmod it is reachable only through the 0700 directory);
//  3. each connection's peer credentials (SO_PEERCRED) are checked: root,
//     or the agent's own uid (so that tests run as a normal user), and
//     nobody else. On systems without SO_PEERCRED every peer is refused.
//
// A stale socket file left by a killed agent is removed at start, but only
// once a dial proves nobody serves it, and never a file that is not a
// socket. The socket is removed when Run returns.
package localapi
