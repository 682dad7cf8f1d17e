package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// A TLS trust failure reaches turbctl as a gRPC Unavailable whose message
// is the handshake error's text: neither crypto/x509's error types nor
// the peer's alert survive grpc-go's transport. tlsTrust reads that text
// to tell what did not match, and which of turbctl's files is concerned,
// so that the person fixes a file rather than the network (issue 17).
// Unknown texts are not guessed at: they stay "unavailable".

// validFor finds crypto/x509's HostnameError text: "certificate is valid
// for A, B, not C".
var validFor = regexp.MustCompile(`certificate is valid for (.*), not ([^\s"\\]+)`)

// tlsTrust returns the explanation of a TLS trust failure in msg, or ""
// if msg is not one. files are turbctl's certificate files, addr the
// controller dialled and serverName --tls-server-name.
func tlsTrust(msg string, files tlsutil.Files, addr, serverName string) string {
	name := serverName
	if name == "" {
		name = "the host of --controller " + addr
	} else {
		name = "--tls-server-name " + name
	}
	switch {
	case strings.Contains(msg, "x509: certificate signed by unknown authority"):
		return fmt.Sprintf("the certificate of controller %s is not signed by the CA in --ca %s: is that file this fleet's ca.crt?", addr, files.CA)
	case validFor.MatchString(msg):
		m := validFor.FindStringSubmatch(msg)
		return fmt.Sprintf("the certificate of controller %s is not valid for %s (checked against %s); it is valid for %s. Dial an address it names, set --tls-server-name to one, or reissue it with that address (--ip/--dns; a dev controller takes --dev-san)", addr, m[2], name, m[1])
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return fmt.Sprintf("the certificate of controller %s has expired or is not yet valid (is this host's clock right?); renew it with 'turbctl tls cert renew'", addr)
	case strings.Contains(msg, tlsutil.ErrWrongPeerRole.Error()):
		return fmt.Sprintf("the server at %s is not a controller: its certificate, signed by the CA in --ca %s, carries another identity (%s)", addr, files.CA, afterLast(msg, tlsutil.ErrWrongPeerRole.Error()+": "))
	case strings.Contains(msg, "remote error: tls: expired certificate"):
		return fmt.Sprintf("controller %s refused the client certificate --cert %s: it has expired; renew it with 'turbctl tls cert renew'", addr, files.Cert)
	case strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "remote error: tls: bad certificate"),
		strings.Contains(msg, "remote error: tls: certificate required"):
		return fmt.Sprintf("controller %s refused the client certificate --cert %s: it is not signed by a CA the controller trusts (is it from this fleet's CA?)", addr, files.Cert)
	}
	return ""
}

// afterLast returns what follows the last sep in s, without the quoting
// grpc-go adds, or s when sep is absent.
func afterLast(s, sep string) string {
	if i := strings.LastIndex(s, sep); i >= 0 {
		s = s[i+len(sep):]
	}
	return strings.TrimRight(s, `"\`)
}

// probeTimeout bounds probeTLS.
const probeTimeout = 2 * time.Second

// probeTLS looks for the reason of a failed call that reads as a plain
// connection error. With TLS 1.3 the client's half of the handshake ends
// before the controller has checked the client's certificate, so a
// refusal reaches grpc-go as a broken pipe or a reset as often as the
// controller's alert. One bare handshake and one read do receive the
// alert; a controller that accepted the certificate sends its HTTP/2
// settings instead, or nothing, and then the probe finds nothing. It
// returns the handshake's error text, or "".
func (a *app) probeTLS() string {
	cfg, err := tlsutil.ClientConfig(a.tls, a.serverName)
	if err != nil {
		return ""
	}
	cfg.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	cfg.NextProtos = []string{"h2"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", a.controller)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = conn.Close() }() // a probe: nothing was written that needs flushing
	_ = conn.SetReadDeadline(time.Now().Add(probeTimeout))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && strings.Contains(err.Error(), "remote error: tls:") {
		return err.Error()
	}
	return ""
}
