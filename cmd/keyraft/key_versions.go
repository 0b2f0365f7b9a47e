package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

// Keyraft's key versions: `key rotate`, `key rewrap`, `key min-version`,
// and the versions in `key info`.

// printVersions prints a rotated key's versions and its rotation
// schedule in `key info`.
func printVersions(p printer, info client.KeyInfo) {
	if info.RotateEverySeconds > 0 {
		p.Printf("Rotates     every %v, next %s\n", time.Duration(info.RotateEverySeconds)*time.Second, formatTime(info.NextRotation))
	}
	if len(info.Versions) < 2 {
		return
	}
	p.Printf("Versions    %d (newest encrypts)\n", len(info.Versions))
	for _, v := range info.Versions {
		state := ""
		switch {
		case v.Destroyed:
			state = "  destroyed"
		case v.Retired:
			state = "  retired"
		}
		p.Printf("  v%-4d     %s by %s%s\n", v.Version, formatTime(v.CreatedAt), orDash(v.CreatedBy), state)
	}
}

func newKeyRotateCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "rotate <name>...",
		Short: "Add a new version to keys (Keyraft)",
		Long: `Rotate keys: each gets a new version that generates and encrypts from now
on, on every node. Everything encrypted under older versions still decrypts,
so nothing has to be re-encrypted; 'keyraft key rewrap' moves ciphertexts to
the newest version if you want to retire older ones.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			p := f.printer(cmd)
			for _, name := range args {
				n, err := c.RotateKey(cmd.Context(), name)
				if err != nil {
					return fmt.Errorf("failed to rotate key %q: %w", name, err)
				}
				if p.json {
					if err := p.Line(struct {
						Name    string `json:"name"`
						Version int    `json:"version"`
					}{name, n}); err != nil {
						return err
					}
					continue
				}
				p.Printf("%s: version %d\n", name, n)
			}
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyRewrapCmd() *cobra.Command {
	var (
		f       *clientFlags
		context string
	)
	cmd := &cobra.Command{
		Use:   "rewrap <name>",
		Short: "Re-encrypt ciphertexts under a key's newest version (Keyraft)",
		Long: `Read base64 ciphertexts from standard input, one per line, and print each
re-encrypted under the key's newest version, one per line, in order. The
plaintext never leaves the server. --context is the base64 associated data
the ciphertexts were made with (the same for all).`,
		Example: `  keyraft key rewrap my-key < old-ciphertexts.txt > new-ciphertexts.txt`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			assoc, err := decodeContext([]string{context}, 0)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			p := f.printer(cmd)
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for line := 1; sc.Scan(); line++ {
				text := strings.TrimSpace(sc.Text())
				if text == "" {
					continue
				}
				ct, err := base64.StdEncoding.DecodeString(text)
				if err != nil {
					return fmt.Errorf("line %d: ciphertext is not valid base64: %w", line, err)
				}
				out, err := c.Rewrap(cmd.Context(), args[0], ct, assoc)
				if err != nil {
					return fmt.Errorf("line %d: failed to rewrap: %w", line, err)
				}
				p.Printf("%s\n", base64.StdEncoding.EncodeToString(out))
			}
			return sc.Err()
		},
	}
	cmd.Flags().StringVar(&context, "context", "", "base64 associated data of the ciphertexts")
	f = addClientFlags(cmd)
	return cmd
}

func newKeyMinVersionCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "min-version <name> <version>",
		Short: "Set the oldest version of a key that may decrypt (Keyraft)",
		Long: `Retire a key's older versions: ciphertexts made with a version below the
given one fail with 'decryption failed: key version is retired'. Setting a
lower version (1: all) undoes it. Rewrap first what must stay readable.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := versionArg(args[1])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.SetMinVersion(cmd.Context(), args[0], n); err != nil {
				return fmt.Errorf("failed to set the minimum version of key %q: %w", args[0], err)
			}
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyDestroyVersionCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "destroy-version <name> <version>",
		Short: "Delete a retired key version's material for good (Keyraft)",
		Long: `Delete the material of a key version below the key's minimum version
('keyraft key min-version'): ciphertexts made with it can never be decrypted
again. Version 1 is the key itself and cannot be destroyed (delete the key).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := versionArg(args[1])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DestroyVersion(cmd.Context(), args[0], n); err != nil {
				return fmt.Errorf("failed to destroy version %d of key %q: %w", n, args[0], err)
			}
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// versionArg parses a key version argument (1 or more).
func versionArg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("version %q is not a number of 1 or more", s)
	}
	return n, nil
}
