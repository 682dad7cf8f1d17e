package tlsutil

import (
	"time"
)

// CertInUse is a certificate a Reloader of this process presents.
type CertInUse struct {
	// Identity is the holder's identity; zero if the certificate has no
	// Turbulence URI SAN.
	Identity Identity
	// File is the certificate file it was loaded from.
	File string
	// NotAfter is when it expires.
	NotAfter time.Time
}

// CertificatesInUse returns the certificate of every live Reloader of
// the process (the registry ReloadOnSIGHUP uses), for the expiry metric.
//
// Each Reloader first looks at its files, as it does before a handshake
// (loading a changed set, warning when expiry is near). That is the point:
// a daemon whose connections are long-lived streams (an agent's session)
// may go days without a handshake, and so without a reload or an expiry
// warning; a scrape then does both, and the metric shows what the next
// handshake would present rather than what was loaded at the last one.
//
// Several Reloaders may load the same files (a controller's gRPC server,
// its raft transport, its forwarder); the result has one entry per
// Reloader, in no particular order, and callers merge them.
func CertificatesInUse() []CertInUse {
	rs := live()
	out := make([]CertInUse, 0, len(rs))
	for _, r := range rs {
		cert, _ := r.refresh()
		c := CertInUse{File: r.files.Cert, NotAfter: cert.Leaf.NotAfter}
		if id, err := IdentityFromCert(cert.Leaf); err == nil {
			c.Identity = id
		}
		out = append(out, c)
	}
	return out
}

// live returns the Reloaders of the registry (signal.go) that are still
// alive. It is kept beside its one caller rather than shared with
// ReloadAll so that this file adds to the registry without changing it.
func live() []*Reloader {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	var rs []*Reloader
	for _, p := range registry.rs {
		if r := p.Value(); r != nil {
			rs = append(rs, r)
		}
	}
	return rs
}
