package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

// The recovery window's commands (Keyraft only): `key ls --deleted`,
// `key restore` and `key purge`.

// runListDeleted prints the keys pending deletion that match args[0], one
// per line with their deletion and purge times, or as a JSON array.
func runListDeleted(cmd *cobra.Command, f *clientFlags, args []string) error {
	pattern := ""
	if len(args) > 0 {
		pattern = args[0]
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	list, err := c.DeletedKeys(cmd.Context(), listPrefix(pattern))
	if err != nil {
		return fmt.Errorf("failed to list deleted keys: %w", err)
	}
	p := f.printer(cmd)
	if p.json {
		if list == nil {
			list = []client.DeletedKey{}
		}
		return p.JSON(list)
	}
	for _, d := range list {
		p.Printf("%-30s deleted %s by %s, purged %s\n", d.Name, formatTime(d.DeletedAt), orDash(d.DeletedBy), formatTime(d.PurgeAt))
	}
	return nil
}

func newKeyRestoreCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "restore <name>...",
		Short: "Restore keys pending deletion (Keyraft)",
		Long: `Bring back keys deleted within the server's recovery window
(protection.recovery_window), with their old key material: everything
encrypted under them decrypts again. 'keyraft key ls --deleted' lists them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachKey(cmd, f, args, "restore", (*client.Client).RestoreKey)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newKeyPurgeCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "purge <name>...",
		Short: "Destroy keys pending deletion now (Keyraft)",
		Long: `Destroy keys deleted within the server's recovery window now, instead of
when the window ends. Data encrypted under them can no longer be decrypted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachKey(cmd, f, args, "purge", (*client.Client).PurgeKey)
		},
	}
	f = addClientFlags(cmd)
	return cmd
}
