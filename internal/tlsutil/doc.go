// Package tlsutil builds the mutual-TLS configurations every Turbulence
// connection uses (agent↔controller, turbctl↔controller, raft between
// controllers), issues certificates, and reads the caller's identity from a
// verified peer certificate.
//
// Every certificate carries its holder's identity as a URI SAN of the form
// spiffe://turbulence/<role>/<name>. There is no plaintext path: all
// listeners and dialers take a Files triple (CA, certificate, key) and
// require TLS 1.3 with a client certificate signed by the CA.
//
// Certificates rotate without restarts: ServerConfig and ClientConfig are
// backed by a Reloader, which compares the files with those it loaded at
// every handshake and reads them again when they change. A set that does
// not load (a certificate replaced before its key) is logged and the
// previous pair stays in use; a certificate within 14 days of expiry is
// logged as a warning, once a day. The CA pools are read at start only.
// ReloadOnSIGHUP (signal.go) adds the explicit trigger: on SIGHUP every
// Reloader of the process (a weak registry filled by NewReloader) loads
// its files at once and the outcome is logged; the daemons' mains start
// it, which also keeps SIGHUP from killing them.
//
// CreateCADir, LoadCADir, CA.IssueChecked and CA.Renew back `turbctl
// tls`: names are validated (ValidateName), unknown roles refused naming
// the allowed ones, keys written 0600, and nothing existing is
// overwritten but by Renew, since a replaced CA locks the whole fleet
// out. Files land in one layout (layout.go, DefaultDir) that the units
// and the daemons' defaults share.
package tlsutil
