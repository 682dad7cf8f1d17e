// Package tlsutil builds the mutual-TLS configurations every Turbulence
// connection uses (agent↔controller, turbctl↔controller, raft between
// controllers), issues certificates, and reads the caller's identity from a
// verified peer certificate.
//
// Every certificate carries its holder's identity as a URI SAN of the form
// spiffe://turbulence/<role>/<name>. There is no plaintext path: all
// listeners and dialers take a Files triple (CA, certificate, key) and
// require TLS 1.3 with a client certificate signed by the CA.
package tlsutil
