package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newKeyCmd) }

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage and use cryptographic keys",
		Long: `Manage and use the keys stored on a Keyraft (or KES) server.

The server, credentials and enclave come from the flags or the environment
(KES_SERVER, KES_API_KEY or KES_CLIENT_CERT/KES_CLIENT_KEY, KES_ENCLAVE).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newKeyCreateCmd(), newKeyImportCmd(), newKeyInfoCmd(), newKeyLsCmd(),
		newKeyRmCmd(), newKeyEncryptCmd(), newKeyDecryptCmd(), newKeyDEKCmd(),
		newKeyProtectCmd(true), newKeyProtectCmd(false), newKeyRestoreCmd(), newKeyPurgeCmd(),
		newKeyRotateCmd(), newKeyRewrapCmd(), newKeyMinVersionCmd(), newKeyDestroyVersionCmd())
	return cmd
}

func newKeyCreateCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "create <name>...",
		Short: "Create keys with fresh random key material",
		Example: `  export KES_SERVER=https://127.0.0.1:7373
  export KES_CLIENT_KEY=minio-kes.key KES_CLIENT_CERT=minio-kes.cert
  keyraft key create -k encrypted-bucket-key`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachKey(cmd, f, args, "create", (*client.Client).CreateKey)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyImportCmd() *cobra.Command {
	var (
		f      *clientFlags
		cipher string
	)
	cmd := &cobra.Command{
		Use:   "import <name> <base64 key>",
		Short: "Import 32 bytes of existing key material as a new key",
		Example: `  keyraft key import my-key "$(head -c 32 /dev/urandom | base64)"
  keyraft key import --cipher ChaCha20 my-key <base64 key>`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := base64.StdEncoding.DecodeString(args[1])
			defer clear(key)
			if err != nil {
				return fmt.Errorf("key material is not valid base64: %w", err)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.ImportKey(cmd.Context(), args[0], key, cipher); err != nil {
				return fmt.Errorf("failed to import key %q: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cipher, "cipher", "AES256", "algorithm of the key: AES256 or ChaCha20")
	f = addClientFlags(cmd)
	return cmd
}

// keyInfoJSON is the JSON form of `key info`, the shape of /v1/key/describe.
type keyInfoJSON struct {
	Name      string     `json:"name"`
	Algorithm string     `json:"algorithm,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	Protected bool       `json:"deletion_protected,omitempty"`
	// Keyraft's key versions, for a rotated key.
	Versions   []client.KeyVersion `json:"versions,omitempty"`
	MinVersion int                 `json:"min_version,omitempty"`
}

func newKeyInfoCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "info <name>",
		Short: "Show a key's metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			info, err := c.DescribeKey(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("failed to describe key %q: %w", args[0], err)
			}
			if info.Name == "" {
				info.Name = args[0]
			}
			p := f.printer(cmd)
			if p.json {
				out := keyInfoJSON{Name: info.Name, Algorithm: info.Algorithm, CreatedBy: info.CreatedBy, Protected: info.Protected,
					Versions: info.Versions, MinVersion: info.MinVersion}
				if !info.CreatedAt.IsZero() {
					out.CreatedAt = &info.CreatedAt
				}
				return p.JSON(out)
			}
			p.Printf("Name        %s\n", info.Name)
			p.Printf("Algorithm   %s\n", orDash(info.Algorithm))
			p.Printf("Created at  %s\n", formatTime(info.CreatedAt))
			p.Printf("Created by  %s\n", orDash(info.CreatedBy))
			if info.Protected {
				p.Printf("Protected   from deletion\n")
			}
			printVersions(p, info)
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyLsCmd() *cobra.Command {
	var f *clientFlags
	var deleted bool
	cmd := &cobra.Command{
		Use:     "ls [pattern]",
		Aliases: []string{"list"},
		Short:   "List keys",
		Long: `List the keys whose names start with the pattern (all keys by default).
A trailing '*' is allowed: 'my*' and 'my' list the same keys.

With --deleted, list the keys pending deletion within the server's recovery
window (Keyraft), with when they were deleted and when they are purged.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if deleted {
				return runListDeleted(cmd, f, args)
			}
			return runList(cmd, f, args, "keys")
		},
	}
	f = addClientFlags(cmd)
	cmd.Flags().BoolVar(&deleted, "deleted", false, "list keys pending deletion (Keyraft)")
	return cmd
}

// runList lists keys, policies or identities matching args[0] (if any) and
// prints them one per line, or as a JSON array of names.
func runList(cmd *cobra.Command, f *clientFlags, args []string, what string) error {
	pattern := ""
	if len(args) > 0 {
		pattern = args[0]
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	list := c.ListAllKeys
	switch what {
	case "policies":
		list = c.ListAllPolicies
	case "identities":
		list = c.ListAllIdentities
	}
	names, err := list(cmd.Context(), listPrefix(pattern))
	if err != nil {
		return fmt.Errorf("failed to list %s: %w", what, err)
	}
	p := f.printer(cmd)
	if p.json {
		if names == nil {
			names = []string{}
		}
		return p.JSON(names)
	}
	for _, n := range names {
		p.Printf("%s\n", n)
	}
	return nil
}

func newKeyRmCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:     "rm <name>...",
		Aliases: []string{"delete"},
		Short:   "Delete keys",
		Long:    "Delete keys. Data encrypted with a deleted key can no longer be decrypted.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachKey(cmd, f, args, "delete", (*client.Client).DeleteKey)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// newKeyProtectCmd is `keyraft key protect` (on) or `keyraft key
// unprotect` (off): a Keyraft-only deletion protection that only an admin
// may set or remove.
func newKeyProtectCmd(on bool) *cobra.Command {
	var f *clientFlags
	use, short, verb := "protect <name>...", "Protect keys from deletion (admin only; Keyraft)", "protect"
	if !on {
		use, short, verb = "unprotect <name>...", "Remove keys' deletion protection (admin only; Keyraft)", "unprotect"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `A protected key cannot be deleted, nor its enclave, until an admin removes
the protection. Keys whose names match a protection.deletion pattern of the
server config are protected when they are created.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachKey(cmd, f, args, verb, func(c *client.Client, ctx context.Context, name string) error {
				return c.SetKeyProtection(ctx, name, on)
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// decodeContext decodes the optional base64 crypto context argument args[i].
func decodeContext(args []string, i int) ([]byte, error) {
	if len(args) <= i {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(args[i])
	if err != nil {
		return nil, fmt.Errorf("context is not valid base64: %w", err)
	}
	return b, nil
}

func newKeyEncryptCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "encrypt <name> <message> [<base64 context>]",
		Short: "Encrypt a message with a key",
		Long: `Encrypt a message (given as text) with a key, optionally bound to a
base64-encoded context that must be given again to decrypt. Prints the
base64 ciphertext, or {"ciphertext":"..."} as JSON.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			cryptoCtx, err := decodeContext(args, 2)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			msg := []byte(args[1])
			defer clear(msg)
			ciphertext, err := c.Encrypt(cmd.Context(), args[0], msg, cryptoCtx)
			if err != nil {
				return fmt.Errorf("failed to encrypt with key %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(struct {
					Ciphertext []byte `json:"ciphertext"`
				}{ciphertext})
			}
			p.Printf("%s\n", base64.StdEncoding.EncodeToString(ciphertext))
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyDecryptCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "decrypt <name> <base64 ciphertext> [<base64 context>]",
		Short: "Decrypt a ciphertext with a key",
		Long: `Decrypt a base64 ciphertext (from 'key encrypt' or 'key dek') with a key
and the same context it was encrypted with. The JSON output of 'key
encrypt' and 'key dek' is accepted in place of the ciphertext. On a terminal the plaintext is
printed as text when it is printable UTF-8 and as base64 otherwise; the JSON
form is always {"plaintext":"<base64>"}.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ciphertext, err := decodeCiphertext(args[1])
			if err != nil {
				return err
			}
			cryptoCtx, err := decodeContext(args, 2)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			plaintext, err := c.Decrypt(cmd.Context(), args[0], ciphertext, cryptoCtx)
			defer clear(plaintext)
			if err != nil {
				return fmt.Errorf("failed to decrypt with key %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(struct {
					Plaintext []byte `json:"plaintext"`
				}{plaintext})
			}
			if printable(plaintext) {
				p.Printf("%s\n", plaintext)
			} else {
				p.Printf("%s\n", base64.StdEncoding.EncodeToString(plaintext))
			}
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// decodeCiphertext decodes a base64 ciphertext, or takes the "ciphertext"
// field of a JSON object as 'key encrypt' and 'key dek' print it when their
// output is captured, e.g. "$(keyraft key encrypt my-key hello)".
func decodeCiphertext(arg string) ([]byte, error) {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, "{") {
		var v struct {
			Ciphertext []byte `json:"ciphertext"`
		}
		if err := json.Unmarshal([]byte(arg), &v); err != nil || v.Ciphertext == nil {
			return nil, errors.New(`ciphertext is neither base64 nor a JSON object with a "ciphertext" field`)
		}
		return v.Ciphertext, nil
	}
	b, err := base64.StdEncoding.DecodeString(arg)
	if err != nil {
		return nil, fmt.Errorf("ciphertext is not valid base64: %w", err)
	}
	return b, nil
}

// printable reports whether b is UTF-8 text without control characters other
// than tab and newline.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return false
		}
	}
	return true
}

func newKeyDEKCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "dek <name> [<base64 context>]",
		Short: "Generate a data encryption key",
		Long: `Generate a new 256-bit data encryption key (DEK) and return it in
plaintext and encrypted with the named key, optionally bound to a
base64-encoded context. 'key decrypt' with the same context recovers the
plaintext from the ciphertext.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cryptoCtx, err := decodeContext(args, 1)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			dek, err := c.GenerateKey(cmd.Context(), args[0], cryptoCtx)
			defer clear(dek.Plaintext)
			if err != nil {
				return fmt.Errorf("failed to generate a data key with key %q: %w", args[0], err)
			}
			return printDEK(f.printer(cmd), dek)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// printDEK prints a DEK as {"plaintext","ciphertext"} or as two lines.
func printDEK(p printer, dek client.DEK) error {
	if p.json {
		return p.JSON(struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext []byte `json:"ciphertext"`
		}{dek.Plaintext, dek.Ciphertext})
	}
	p.Printf("Plaintext   %s\n", base64.StdEncoding.EncodeToString(dek.Plaintext))
	p.Printf("Ciphertext  %s\n", base64.StdEncoding.EncodeToString(dek.Ciphertext))
	return nil
}

// forEachKey runs op on every named key in order, stopping at the first
// failure, which it reports as "failed to <verb> key".
func forEachKey(cmd *cobra.Command, f *clientFlags, names []string, verb string, op func(*client.Client, context.Context, string) error) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := op(c, cmd.Context(), name); err != nil {
			return fmt.Errorf("failed to %s key %q: %w", verb, name, err)
		}
	}
	return nil
}
