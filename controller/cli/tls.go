package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
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
	cert.AddCommand(a.tlsCertCreateCommand())
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
		Short: "Issue a certificate: <out>/<role>-<name>.crt and .key (0600)",
		Long: `Issue a certificate for one identity, signed by the CA in --ca-dir.

Roles: controller and agent are machines; viewer reads, operator also
applies and reverts faults and runs experiments, admin also manages the
cluster. Halt is open to every human role. An agent's name is its agent
ID; a controller certificate needs --dns and/or --ip, the addresses
agents and turbctl dial. Only controller certificates may carry --dns or
--ip: no other role serves, and clients accept only a controller.`,
		Args: exactArgs(),
		RunE: runE(func(*cobra.Command, []string) error {
			if caDir == "" || out == "" {
				return usagef("--ca-dir and --out are required")
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
	f.StringVar(&out, "out", "", "directory for the certificate and key (created 0700)")
	f.DurationVar(&expiry, "expiry", tlsutil.DefaultLeafValidity, "how long the certificate is valid")
	f.StringSliceVar(&dnsNames, "dns", nil, "DNS names the certificate is valid for (controllers only)")
	f.IPSliceVar(&ips, "ip", nil, "IP addresses the certificate is valid for (controllers only)")
	return cmd
}

// pkiResult is what the tls commands print.
type pkiResult struct {
	Identity string `json:"identity,omitempty"`
	CA       string `json:"ca"`
	Cert     string `json:"cert,omitempty"`
	Key      string `json:"key"`
	Expires  string `json:"expires"`
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
	return tw.Flush()
}
