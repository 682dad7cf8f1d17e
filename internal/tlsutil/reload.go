package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ExpiryWarning is how long before a certificate expires the reloader
// starts warning in the logs, and how often it repeats the warning
// (ExpiryWarningEvery). Two weeks leaves room for a weekend and a holiday
// between the first warning and a fleet that cannot connect.
const (
	ExpiryWarning      = 14 * 24 * time.Hour
	ExpiryWarningEvery = 24 * time.Hour
)

// Option adjusts ServerConfig, ClientConfig and NewReloader.
type Option func(*Reloader)

// WithLogger sends the reloader's messages (reloads, failed reloads,
// expiry warnings) to logger instead of slog.Default().
func WithLogger(logger *slog.Logger) Option {
	return func(r *Reloader) {
		if logger != nil {
			r.logger = logger
		}
	}
}

// withClock replaces time.Now, for tests of the expiry warning.
func withClock(now func() time.Time) Option { return func(r *Reloader) { r.now = now } }

// Reloader is a certificate source that follows its files: before each
// handshake it compares the CA, certificate and key files with those it
// loaded (modification time, size and identity of the file, so a rename
// or a symlink swap counts) and loads them again when one changed. A
// daemon therefore picks up a rotated certificate at its next handshake,
// without a restart and without a signal.
//
// A set that fails to load (a key that does not match its certificate
// because only one file was replaced so far) is logged once and the
// previous certificate stays in use; it is tried again when the files
// change again.
//
// Both sides reload their own certificate (GetCertificate,
// GetClientCertificate) but keep the CA they started with: tls.Config has
// no per-handshake hook for the CA pools that would keep the caller's
// other settings. Rotating the CA itself (rare, and it means reissuing
// every certificate anyway) needs a restart.
type Reloader struct {
	files  Files
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	loaded   []os.FileInfo // stamps of the files in use
	failed   []os.FileInfo // stamps of the last set that failed to load
	cert     *tls.Certificate
	pool     *x509.CertPool
	leaf     *x509.Certificate
	warnedAt time.Time
}

// NewReloader loads files once, failing if they cannot be used.
func NewReloader(files Files, opts ...Option) (*Reloader, error) {
	r := &Reloader{files: files, logger: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(r)
	}
	r.logger = r.logger.With("component", "tls", "cert", files.Cert)
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	if err := r.loadLocked(stamps); err != nil {
		return nil, err
	}
	r.checkExpiryLocked()
	// ReloadOnSIGHUP reaches every Reloader through the registry.
	register(r)
	return r, nil
}

// stat reads the stamps of the three files.
func (r *Reloader) stat() ([]os.FileInfo, error) {
	out := make([]os.FileInfo, 0, 3)
	for _, p := range []string{r.files.CA, r.files.Cert, r.files.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func sameStamps(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

// loadLocked reads the files and installs them. Caller holds mu (or is
// the constructor).
func (r *Reloader) loadLocked(stamps []os.FileInfo) error {
	pool, pair, err := r.files.load()
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse certificate %s: %w", r.files.Cert, err)
	}
	pair.Leaf = leaf
	r.cert, r.pool, r.leaf, r.loaded, r.failed = &pair, pool, leaf, stamps, nil
	return nil
}

// refresh reloads the files if they changed since the last load and
// returns what is in use now.
func (r *Reloader) refresh() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	switch {
	case err != nil:
		// A file is missing for a moment (being replaced): keep going
		// with what was loaded; the next handshake looks again.
	case sameStamps(stamps, r.loaded), sameStamps(stamps, r.failed):
	default:
		old := r.leaf
		if err := r.loadLocked(stamps); err != nil {
			r.failed = stamps
			r.logger.Warn("certificate files changed but cannot be loaded; still using the previous certificate", "error", err)
			break
		}
		r.warnedAt = time.Time{}
		r.logger.Info("certificate reloaded", "serial", r.leaf.SerialNumber.Text(16), "previous_serial", old.SerialNumber.Text(16),
			"not_after", r.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	r.checkExpiryLocked()
	return r.cert, r.pool
}

// checkExpiryLocked warns when the certificate in use expires within
// ExpiryWarning, at most once per ExpiryWarningEvery.
func (r *Reloader) checkExpiryLocked() {
	now := r.now()
	left := r.leaf.NotAfter.Sub(now)
	if left > ExpiryWarning || (!r.warnedAt.IsZero() && now.Sub(r.warnedAt) < ExpiryWarningEvery) {
		return
	}
	r.warnedAt = now
	attrs := []any{"not_after", r.leaf.NotAfter.UTC().Format(time.RFC3339), "remaining", left.Round(time.Minute).String()}
	if id, err := IdentityFromCert(r.leaf); err == nil {
		attrs = append(attrs, "identity", id.String())
	}
	if left <= 0 {
		r.logger.Error("certificate has expired; replace the files (they are reloaded without a restart)", attrs...)
		return
	}
	r.logger.Warn("certificate expires soon; replace the files (they are reloaded without a restart)", attrs...)
}

// Reload loads the files now, whether or not they look changed. It is
// for callers that want an explicit trigger (ReloadOnSIGHUP). On error
// the previous certificate stays in use; the error names the file.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err != nil {
		return fmt.Errorf("reload %s: %w", r.files.Cert, err)
	}
	old := r.leaf
	if err := r.loadLocked(stamps); err != nil {
		return fmt.Errorf("reload %s: %w", r.files.Cert, err)
	}
	r.logger.Info("certificate reloaded", "serial", r.leaf.SerialNumber.Text(16), "previous_serial", old.SerialNumber.Text(16),
		"not_after", r.leaf.NotAfter.UTC().Format(time.RFC3339))
	r.warnedAt = time.Time{}
	r.checkExpiryLocked()
	return nil
}

// NotAfter is when the certificate in use expires (for metrics).
func (r *Reloader) NotAfter() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaf.NotAfter
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, _ := r.refresh()
	return cert, nil
}

// GetClientCertificate is tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, _ := r.refresh()
	return cert, nil
}

// ServerConfig is a TLS 1.3 server configuration that requires a client
// certificate signed by the CA, and presents the certificate as it is in
// the files at each handshake.
//
// The certificate comes through GetCertificate, a method value that
// survives tls.Config.Clone and leaves every other field (a caller's
// VerifyConnection, as raft's controller-only check) in force; a
// GetConfigForClient would replace the whole config and silently drop
// such checks.
func (r *Reloader) ServerConfig() *tls.Config {
	_, pool := r.refresh()
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		GetCertificate: r.GetCertificate,
	}
}

// ClientConfig is a TLS 1.3 client configuration that presents the
// certificate as it is in the files at each handshake and verifies the
// server against the CA loaded at start.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	_, pool := r.refresh()
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              pool,
		ServerName:           serverName,
		GetClientCertificate: r.GetClientCertificate,
	}
}
