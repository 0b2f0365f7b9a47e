package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
)

func init() { extraCommands = append(extraCommands, newIdentityCmd) }

// apiKeyPrefix marks an argument as an API key rather than a file name.
const apiKeyPrefix = "kes:v1:"

// defaultIdentityExpiry is the validity of certificates from `identity new`.
const defaultIdentityExpiry = 720 * time.Hour

func newIdentityCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "identity [<api key> | <file>]",
		Short: "Create identities and compute, inspect and list them",
		Long: `Create identities and compute, inspect and list them.

An identity is the hex SHA-256 of a certificate's public key. Policies grant
access to identities; a client proves an identity with the matching private
key, given as a certificate/key pair or as an API key (kes:v1:...).

Without arguments, 'keyraft identity' generates a new API key. With an API
key it prints its identity; with a PEM file it prints the identity of the
certificate in it, or converts an Ed25519 private key into its API key.`,
		Example: `  keyraft identity
  keyraft identity kes:v1:AN9Cl5fyvKpTSWcHVlGFG2+Vug86YpzXGv847KvEs+dN
  keyraft identity ./client.cert`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newPrinter(cmd, asJSON)
			if len(args) == 0 {
				key, err := identity.GenerateAPIKey(nil)
				if err != nil {
					return err
				}
				return printNewIdentity(p, key, "", "")
			}
			return runIdentityOf(cmd, args[0], asJSON, true)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newIdentityNewCmd(), newIdentityOfCmd(), newIdentityInfoCmd(), newIdentityLsCmd(), newIdentityRmCmd())
	return cmd
}

func newIdentityNewCmd() *cobra.Command {
	var (
		keyFile, certFile string
		ips, dnsNames     []string
		expiry            time.Duration
		force, asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "new [subject]",
		Short: "Generate a new API key, optionally as a certificate/key pair",
		Long: `Generate a new Ed25519 API key and print it with its identity.

With --key and --cert, also write the private key (PKCS#8 PEM, mode 0600) and
a self-signed certificate for it, valid for TLS client and server
authentication, with the given IP and DNS subject alternative names, the
subject as common name (default: the identity) and the given validity.
Existing files are not overwritten unless --force is given.`,
		Example: `  keyraft identity new
  keyraft identity new kes_server --key kes-server.key --cert kes-server.cert --ip 127.0.0.1 --dns localhost
  keyraft identity new minio_server --key minio-kes.key --cert minio-kes.cert --ip 127.0.0.1 --dns localhost`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (keyFile == "") != (certFile == "") {
				return errors.New("--key and --cert must be given together")
			}
			if keyFile == "" && (len(ips) > 0 || len(dnsNames) > 0 || cmd.Flags().Changed("expiry")) {
				return errors.New("--ip, --dns and --expiry need --key and --cert")
			}
			if expiry <= 0 {
				return fmt.Errorf("--expiry must be positive, not %v", expiry)
			}
			parsedIPs := make([]net.IP, 0, len(ips))
			for _, s := range ips {
				ip := net.ParseIP(strings.TrimSpace(s))
				if ip == nil {
					return fmt.Errorf("--ip: %q is not an IP address", s)
				}
				parsedIPs = append(parsedIPs, ip)
			}
			key, err := identity.GenerateAPIKey(nil)
			if err != nil {
				return err
			}
			if keyFile != "" {
				subject := ""
				if len(args) > 0 {
					subject = args[0]
				}
				opts := identity.CertOptions{
					Subject: subject, IPs: parsedIPs, DNSNames: dnsNames,
					Expiry: expiry, ServerAuth: true, ClientAuth: true,
				}
				if err := writeIdentityFiles(key, opts, keyFile, certFile, force); err != nil {
					return err
				}
			}
			return printNewIdentity(newPrinter(cmd, asJSON), key, keyFile, certFile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", "", "write the private key to this file")
	fl.StringVar(&certFile, "cert", "", "write the self-signed certificate to this file")
	fl.StringSliceVar(&ips, "ip", nil, "IP subject alternative name (repeatable or comma-separated)")
	fl.StringSliceVar(&dnsNames, "dns", nil, "DNS subject alternative name (repeatable or comma-separated)")
	fl.DurationVar(&expiry, "expiry", defaultIdentityExpiry, "validity of the certificate")
	fl.BoolVarP(&force, "force", "f", false, "overwrite existing files")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writeIdentityFiles writes the PKCS#8 private key of key (mode 0600) and a
// self-signed certificate for it. Without force it fails, before writing
// anything, when either file exists. Missing parent directories are created.
func writeIdentityFiles(key identity.APIKey, opts identity.CertOptions, keyFile, certFile string, force bool) error {
	if !force {
		for _, f := range []string{keyFile, certFile} {
			if _, err := os.Stat(f); err == nil {
				return fmt.Errorf("%s already exists; use --force to overwrite it", f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	priv := key.PrivateKey()
	defer clear(priv)
	_, der, err := identity.SelfSigned(priv, opts)
	if err != nil {
		return err
	}
	keyPEM, err := identity.EncodePrivateKeyPEM(priv)
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	if err := writeNewFile(keyFile, keyPEM, 0o600, force); err != nil {
		return err
	}
	return writeNewFile(certFile, identity.EncodeCertificatePEM(der), 0o644, force)
}

// writeNewFile writes data to a new file with mode perm; with force an
// existing file is replaced and its mode set to perm.
func writeNewFile(name string, data []byte, perm os.FileMode, force bool) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(name, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; use --force to overwrite it", name)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newIdentityJSON is the JSON form of a generated identity.
type newIdentityJSON struct {
	APIKey   string `json:"api_key"`
	Identity string `json:"identity"`
	KeyFile  string `json:"key_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
}

// printNewIdentity prints a generated API key, its identity and the files
// written (if any).
func printNewIdentity(p printer, key identity.APIKey, keyFile, certFile string) error {
	if p.json {
		return p.JSON(newIdentityJSON{APIKey: key.String(), Identity: key.Identity(), KeyFile: keyFile, CertFile: certFile})
	}
	p.Printf("API key:   %s\n", key.String())
	p.Printf("Identity:  %s\n", key.Identity())
	if keyFile != "" {
		p.Printf("\nPrivate key:  %s\nCertificate:  %s\n", keyFile, certFile)
	}
	p.Printf("\nThe API key is a secret: whoever has it acts as this identity. It is\n")
	p.Printf("shown only now. The identity is public: list it in a policy's identities\n")
	p.Printf("to grant access. 'keyraft identity of <api key|cert file>' recomputes it.\n")
	return nil
}

func newIdentityOfCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "of <api key | certificate file>",
		Short: "Print the identity of an API key or a certificate",
		Long: `Print the identity of an API key or of the certificate (or private key)
in a PEM file. The identity is printed alone, so that scripts can use it:

  MINIO_IDENTITY_HASH=$(keyraft identity of minio-kes.cert)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIdentityOf(cmd, args[0], asJSON, false)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"identity":"..."}`)
	return cmd
}

// runIdentityOf prints the identity of an API key or a PEM file. With
// convert, an Ed25519 private key file is also converted into its API key.
// The identity is printed bare unless asJSON is set, regardless of whether
// stdout is a terminal.
func runIdentityOf(cmd *cobra.Command, arg string, asJSON, convert bool) error {
	p := printer{out: cmd.OutOrStdout(), json: asJSON, tty: isTerminal(cmd.OutOrStdout())}
	if strings.HasPrefix(strings.TrimSpace(arg), apiKeyPrefix) {
		key, err := identity.ParseAPIKey(arg)
		if err != nil {
			return err
		}
		return printIdentity(p, key.Identity())
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	defer clear(data)
	if cert, err := identity.ParseCertificatePEM(data); err == nil {
		return printIdentity(p, identity.Of(cert))
	}
	priv, err := identity.ParsePrivateKeyPEM(data)
	if err != nil {
		return fmt.Errorf("%s: neither an API key nor a PEM file with a certificate or private key", arg)
	}
	ed, isEd := priv.(ed25519.PrivateKey)
	if isEd {
		defer clear(ed)
	}
	if isEd && convert {
		key, err := identity.APIKeyFromPrivateKey(ed)
		if err != nil {
			return err
		}
		if p.json {
			return p.JSON(newIdentityJSON{APIKey: key.String(), Identity: key.Identity()})
		}
		p.Printf("API key:   %s\nIdentity:  %s\n", key.String(), key.Identity())
		return nil
	}
	id, err := identity.OfPublicKey(priv.Public())
	if err != nil {
		return err
	}
	return printIdentity(p, id)
}

// printIdentity prints id bare or as {"identity":id}.
func printIdentity(p printer, id string) error {
	if p.json {
		return p.JSON(struct {
			Identity string `json:"identity"`
		}{id})
	}
	p.Printf("%s\n", id)
	return nil
}

// identityInfoJSON is the JSON form of `identity info`.
type identityInfoJSON struct {
	Identity  string     `json:"identity"`
	Admin     bool       `json:"admin,omitempty"`
	Policy    string     `json:"policy,omitempty"`
	Allow     []string   `json:"allow,omitempty"`
	Deny      []string   `json:"deny,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

func newIdentityInfoCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "info [identity]",
		Short: "Describe your own identity or another one",
		Long: `Without an argument, describe the identity you connect with: whether it is
the admin, or which policy applies to it and what that policy allows. With
an identity, describe that identity (needs the permission to do so).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var (
				info   client.IdentityInfo
				policy *client.Policy
			)
			if len(args) == 0 {
				info, policy, err = c.DescribeSelf(cmd.Context())
				if err != nil {
					return fmt.Errorf("failed to describe your identity: %w", err)
				}
			} else if info, err = c.DescribeIdentity(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("failed to describe identity %q: %w", args[0], err)
			}
			return printIdentityInfo(f.printer(cmd), info, policy)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// printIdentityInfo prints an identity description and, if known, its policy.
func printIdentityInfo(p printer, info client.IdentityInfo, policy *client.Policy) error {
	if p.json {
		out := identityInfoJSON{
			Identity: info.Identity, Admin: info.IsAdmin, Policy: info.Policy,
			CreatedAt: timePtr(info.CreatedAt), CreatedBy: info.CreatedBy,
		}
		if policy != nil {
			out.Allow, out.Deny = policy.Allow, policy.Deny
		}
		return p.JSON(out)
	}
	p.Printf("Identity    %s\n", info.Identity)
	switch {
	case info.IsAdmin:
		p.Printf("Role        admin\n")
	case info.Policy != "":
		p.Printf("Policy      %s\n", info.Policy)
	}
	p.Printf("Created at  %s\n", formatTime(info.CreatedAt))
	if info.CreatedBy != "" {
		p.Printf("Created by  %s\n", info.CreatedBy)
	}
	if policy != nil {
		printPatterns(p, "Allow", policy.Allow)
		printPatterns(p, "Deny", policy.Deny)
	}
	return nil
}

func newIdentityLsCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:     "ls [pattern]",
		Aliases: []string{"list"},
		Short:   "List identities",
		Long:    "List the identities (admin and policy members) that start with the pattern.",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd, f, args, "identities")
		},
	}
	f = addClientFlags(cmd)
	return cmd
}
