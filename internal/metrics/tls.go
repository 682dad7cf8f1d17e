package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// CertExpiryName is the certificate expiry gauge, shared by the daemons.
const CertExpiryName = "turbulence_tls_certificate_expiry_timestamp_seconds"

// RegisterCertExpiry adds the certificate expiry gauge to reg: for every
// certificate the process presents (tlsutil.CertificatesInUse), its
// NotAfter as a Unix timestamp, labelled with the holder's role and name.
// Alert on `… - time() < 14*86400`, the same two weeks after which the
// daemons log a warning (tlsutil.ExpiryWarning).
//
// A certificate without a Turbulence identity (not issued by turbctl tls)
// is labelled role="" and its file as the name, so that it still shows.
// Several Reloaders of one identity (a controller's server, raft and
// forwarder) become one sample with the earliest expiry: if one of them
// still presents an old certificate, that is the one that will fail.
func RegisterCertExpiry(reg prometheus.Registerer) {
	reg.MustRegister(GaugeFunc(CertExpiryName,
		"When the TLS certificate this process presents expires (Unix seconds), by the role and name in it.",
		[]string{"role", "name"},
		func(emit Emit) {
			type key struct{ role, name string }
			earliest := map[key]float64{}
			for _, c := range tlsutil.CertificatesInUse() {
				k := key{c.Identity.Role, c.Identity.Name}
				if k.role == "" {
					k.name = c.File
				}
				v := float64(c.NotAfter.Unix())
				if old, ok := earliest[k]; !ok || v < old {
					earliest[k] = v
				}
			}
			for k, v := range earliest {
				emit(v, k.role, k.name)
			}
		}))
}
