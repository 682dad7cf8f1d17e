package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// tlsCommand is the offline PKI tooling: it never dials a controller.
// Every Turbulence connection is mutual TLS with an identity in the
// certificate (spiffe://turbulence/<role>/<name>), so making those
// certificates must be easy, or people will look for a way around TLS
// (docs/users.md C11).
func (a *app) tlsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Create the fleet CA and certificates (offline, no controller)",
		Args:  noSubcommand,
		RunE:  missingSubcommand,
	}
	ca := &cobra.Command{Use: "ca", Short: "Manage the fleet CA", Args: noSubcommand, RunE: missingSubcommand}
	ca.AddCommand(a.tlsCACreateCommand())
	cert := &cobra.Command{Use: "cert", Short: "Issue certificates signed by the fleet CA", Args: noSubcommand, RunE: missingSubcommand}
	cert.AddCommand(a.tlsCertCreateCommand(), a.tlsCertRenewCommand())
	cmd.AddCommand(ca, cert)
	return cmd
}

func (a *app) tlsCACreateCommand() *cobra.Command {
	var (
		dir, commonName string
		expiry          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a new CA: <dir>/ca.crt and <dir>/ca.key (0600)",
		Long: `Create the CA that signs every certificate of one Turbulence fleet.

ca.crt goes to every controller, agent and turbctl user; ca.key signs
certificates and belongs offline. An existing CA is never overwritten:
replacing it would lock out every certificate it signed.`,
		Args: exactArgs(),
		RunE: runE(func(*cobra.Command, []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			ca, err := tlsutil.CreateCADir(dir, commonName, expiry)
			if err != nil {
				return err
			}
			return a.printPKI(pkiResult{
				CA:      filepath.Join(dir, tlsutil.CACertFile),
				Key:     filepath.Join(dir, tlsutil.CAKeyFile),
				Expires: ca.Cert.NotAfter.UTC().Format(time.RFC3339),
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for ca.crt and ca.key (created 0700)")
	f.StringVar(&commonName, "common-name", "Turbulence CA", "the CA's subject common name")
	f.DurationVar(&expiry, "expiry", tlsutil.DefaultCAValidity, "how long the CA is valid")
	return cmd
}

func (a *app) tlsCertCreateCommand() *cobra.Command {
	var (
		caDir, role, name, out string
		expiry                 time.Duration
		dnsNames               []string
		ips                    []net.IP
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Issue a certificate into the host layout: DIR/agent.crt, DIR/controller.crt or DIR/NAME.crt, with DIR/ca.crt",
		Long: `Issue a certificate for one identity, signed by the CA in --ca-dir.

Roles: controller and agent are machines; viewer reads, operator also
applies and reverts faults and runs experiments, admin also manages the
cluster. Halt is open to every human role. An agent's name is its agent
ID; a controller certificate needs --dns and/or --ip, the addresses
agents and turbctl dial. Only controller certificates may carry --dns or
--ip: no other role serves, and clients accept only a controller.

The files land in --out-dir (default ` + tlsutil.DefaultDir + `) in the layout
that the systemd units and the daemons' defaults use:

  agent       DIR/agent.crt       DIR/agent.key       DIR/ca.crt
  controller  DIR/controller.crt  DIR/controller.key  DIR/ca.crt
  people      DIR/NAME.crt        DIR/NAME.key        DIR/ca.crt

The key is mode 0600. An existing certificate is never overwritten
('turbctl tls cert renew' replaces one), nor a different ca.crt.`,
		Args: exactArgs(),
		RunE: runE(func(*cobra.Command, []string) error {
			if caDir == "" {
				return usagef("--ca-dir is required")
			}
			if out == "" {
				return invalidf("--out-dir must not be empty")
			}
			if err := tlsutil.ValidateRole(role); err != nil {
				return invalidf("--role: %v", err)
			}
			if name == "" {
				return usagef("--name: name is required")
			}
			if err := tlsutil.ValidateName(name); err != nil {
				return invalidf("--name: %v", err)
			}
			if err := tlsutil.CheckServerNames(role, dnsNames, ips); err != nil {
				return invalidf("--dns/--ip: %v (agents and turbctl accept only a controller as their server)", err)
			}
			if role == tlsutil.RoleController && len(dnsNames) == 0 && len(ips) == 0 {
				return usagef("a controller certificate needs --dns or --ip: agents and turbctl check the controller's address against it")
			}
			ca, err := tlsutil.LoadCADir(caDir)
			if err != nil {
				return err
			}
			files, err := ca.IssueChecked(out, filepath.Join(caDir, tlsutil.CACertFile), tlsutil.Leaf{
				Identity: tlsutil.Identity{Role: role, Name: name},
				DNSNames: dnsNames,
				IPs:      ips,
				Validity: expiry,
			})
			if err != nil {
				return err
			}
			cert, err := tlsutil.ReadCertFile(files.Cert)
			if err != nil {
				return err
			}
			return a.printPKI(pkiResult{
				Identity: tlsutil.Identity{Role: role, Name: name}.URI().String(),
				CA:       files.CA,
				Cert:     files.Cert,
				Key:      files.Key,
				Expires:  cert.NotAfter.UTC().Format(time.RFC3339),
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory holding ca.crt and ca.key (from 'turbctl tls ca create')")
	f.StringVar(&role, "role", "", "controller, agent, viewer, operator or admin")
	f.StringVar(&name, "name", "", "the holder's name: host name, agent ID, node ID or person (letters, digits, . - _)")
	f.StringVar(&out, "out-dir", tlsutil.DefaultDir, "directory for the certificate, its key and ca.crt (created 0700)")
	// --out is the flag's first name, kept for scripts that use it.
	f.StringVar(&out, "out", tlsutil.DefaultDir, "same as --out-dir")
	_ = f.MarkHidden("out")
	f.DurationVar(&expiry, "expiry", tlsutil.DefaultLeafValidity, "how long the certificate is valid")
	f.StringSliceVar(&dnsNames, "dns", nil, "DNS names the certificate is valid for (controllers only)")
	f.IPSliceVar(&ips, "ip", nil, "IP addresses the certificate is valid for (controllers only)")
	return cmd
}

func (a *app) tlsCertRenewCommand() *cobra.Command {
	var (
		caDir, certPath, keyPath string
		expiry                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Re-issue a certificate for the same identity and names, replacing its files",
		Long: `Re-issue the certificate in --cert with the CA in --ca-dir: the same
identity (role and name) and the same --dns/--ip names, a fresh key, valid
for --expiry from now. The key file (--key, default: --cert with .key) and
then the certificate file are each replaced atomically.

The daemons pick the new files up at their next TLS handshake, or at once
on SIGHUP ('systemctl reload turbulence-agent'); a controller run by its
unit reads copies made at start and needs 'systemctl restart', one node
at a time. A certificate that the CA in --ca-dir did not sign is refused:
rotating the CA itself is described in docs/operations.md.`,
		Args: exactArgs(),
		RunE: runE(func(*cobra.Command, []string) error {
			if caDir == "" || certPath == "" {
				return usagef("--ca-dir and --cert are required")
			}
			if expiry <= 0 {
				return invalidf("--expiry must be positive, got %s", expiry)
			}
			if keyPath == "" {
				keyPath = strings.TrimSuffix(certPath, ".crt") + ".key"
			}
			ca, err := tlsutil.LoadCADir(caDir)
			if err != nil {
				return err
			}
			r, err := ca.Renew(certPath, keyPath, expiry)
			if err != nil {
				return err
			}
			return a.printPKI(pkiResult{
				Identity: r.Identity.URI().String(),
				CA:       filepath.Join(caDir, tlsutil.CACertFile),
				Cert:     certPath,
				Key:      keyPath,
				Expires:  r.New.NotAfter.UTC().Format(time.RFC3339),
				Replaced: r.Old.NotAfter.UTC().Format(time.RFC3339),
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca-dir", "", "directory holding ca.crt and ca.key of the CA that signed --cert")
	f.StringVar(&certPath, "cert", "", "the certificate to renew, e.g. "+tlsutil.DefaultDir+"/agent.crt")
	f.StringVar(&keyPath, "key", "", "its key (default: --cert with .key for .crt)")
	f.DurationVar(&expiry, "expiry", tlsutil.DefaultLeafValidity, "how long the new certificate is valid")
	return cmd
}

// pkiResult is what the tls commands print.
type pkiResult struct {
	Identity string `json:"identity,omitempty"`
	CA       string `json:"ca"`
	Cert     string `json:"cert,omitempty"`
	Key      string `json:"key"`
	Expires  string `json:"expires"`
	// Replaced is the expiry of the certificate a renewal replaced.
	Replaced string `json:"replaced_expiry,omitempty"`
}

func (a *app) printPKI(r pkiResult) error {
	if a.json() {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	tw := table(a.stdout)
	if r.Identity != "" {
		row(tw, "Identity:", r.Identity)
	}
	row(tw, "CA:", r.CA)
	if r.Cert != "" {
		row(tw, "Certificate:", r.Cert)
	}
	row(tw, "Key:", r.Key+" (mode 0600)")
	row(tw, "Expires:", r.Expires)
	if r.Replaced != "" {
		row(tw, "Replaced:", "the previous certificate, which expires "+r.Replaced)
	}
	return tw.Flush()
}
