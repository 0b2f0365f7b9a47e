package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
	"github.com/keyraft/keyraft/internal/identity"
)

func init() { extraCommands = append(extraCommands, newClusterCmd) }

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Manage the Raft cluster: members, status, backups",
		Long: `Manage the cluster's members and backups. These commands need the admin
identity (or a policy allowing /v1/cluster/...). See docs/operations.md.`,
		Args: cobra.NoArgs,
	}
	snap := &cobra.Command{Use: "snapshot", Short: "Save or restore the replicated state", Args: cobra.NoArgs}
	snap.AddCommand(newSnapshotSaveCmd(), newSnapshotRestoreCmd())
	cmd.AddCommand(newClusterStatusCmd(), newClusterAddCmd("add"), newClusterAddCmd("join"), newClusterRemoveCmd(), snap, newRotateSealCmd())
	return cmd
}

func newClusterStatusCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every member: id, addresses, role, last contact, applied index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return fmt.Errorf("failed to read the cluster status: %w", err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(st)
			}
			p.Printf("Leader: %s (answered by %s)\n", orDash(st.Leader), st.Node)
			p.Printf("Seal key: %s\n\n", describeSeal(st.Seal))
			p.Printf("%-12s %-10s %-22s %-30s %-12s %s\n", "ID", "ROLE", "RAFT", "API", "APPLIED", "LAST CONTACT")
			for _, m := range st.Members {
				role := strings.ToLower(m.State)
				if m.Error != "" {
					role = "unreachable"
				}
				if !m.Voter {
					role += " (nonvoter)"
				}
				contact := "-"
				if !m.LastContact.IsZero() {
					contact = time.Since(m.LastContact).Round(time.Millisecond).String() + " ago"
				}
				p.Printf("%-12s %-10s %-22s %-30s %-12d %s\n", m.ID, role, m.RaftAddr, orDash(m.APIAddr), m.AppliedIndex, contact)
			}
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newClusterAddCmd(use string) *cobra.Command {
	var (
		f        *clientFlags
		id       string
		nodeCert string
		apiAddr  string
	)
	cmd := &cobra.Command{
		Use:   use + " <node-id> <raft-address>",
		Short: "Authorize and add a member (idempotent)",
		Long: `Add a member to the cluster on the admin's authority. The member is
identified by the certificate it uses on the cluster port: pass the identity
(--identity, as printed by 'keyraft identity of node.cert') or the
certificate (--node-cert). Start the new node with 'cluster.join' listing an
existing member; it catches up from a snapshot. 'join' and 'add' are the
same command. A removed node id can never be added again.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (id == "") == (nodeCert == "") {
				return errors.New("give exactly one of --identity and --node-cert")
			}
			if nodeCert != "" {
				b, err := os.ReadFile(nodeCert)
				if err != nil {
					return err
				}
				cert, err := identity.ParseCertificatePEM(b)
				if err != nil {
					return fmt.Errorf("--node-cert: %w", err)
				}
				id = identity.Of(cert)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			members, err := c.AddMember(cmd.Context(), client.Member{ID: args[0], RaftAddr: args[1], APIAddr: apiAddr, Identity: id})
			if err != nil {
				return fmt.Errorf("failed to add member %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(members)
			}
			p.Printf("Added %s; members: ", args[0])
			for i, m := range members {
				if i > 0 {
					p.Printf(", ")
				}
				p.Printf("%s", m.ID)
			}
			p.Printf("\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "identity", "", "the member's certificate identity (hex SHA-256)")
	cmd.Flags().StringVar(&nodeCert, "node-cert", "", "the member's certificate file (its identity is computed)")
	cmd.Flags().StringVar(&apiAddr, "api", "", "the member's API URL, https://host:port (informational)")
	f = addClientFlags(cmd)
	return cmd
}

func newClusterRemoveCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "remove <node-id>",
		Short: "Remove a (dead) member for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.RemoveMember(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("failed to remove member %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(map[string]string{"removed": args[0]})
			}
			p.Printf("Removed %s\n", args[0])
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newSnapshotSaveCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "save <file>",
		Short: "Write a backup of the replicated state (keys stay sealed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			// Write beside the target and rename, so a failed save never
			// leaves a truncated backup under the final name.
			tmp, err := os.CreateTemp(filepath.Dir(args[0]), ".keyraft-snapshot-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := c.SaveSnapshot(cmd.Context(), tmp); err != nil {
				tmp.Close()
				return fmt.Errorf("failed to save the snapshot: %w", err)
			}
			if err := tmp.Sync(); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), args[0]); err != nil {
				return err
			}
			fi, _ := os.Stat(args[0])
			p := f.printer(cmd)
			if p.json {
				return p.JSON(map[string]any{"file": args[0], "bytes": fi.Size()})
			}
			p.Printf("Saved %d bytes to %s\n", fi.Size(), args[0])
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newSnapshotRestoreCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Replace the cluster's replicated state with a backup",
		Long: `Replace the replicated state of the whole cluster with a snapshot written by
'keyraft cluster snapshot save'. The request is sent to the leader (found
through 'cluster status'). Keys created after the snapshot stay in the
keystore and are loaded again on first use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return fmt.Errorf("failed to find the leader: %w", err)
			}
			for _, m := range st.Members {
				if m.ID == st.Leader && m.APIAddr != "" {
					if c, err = c.Node(m.APIAddr); err != nil {
						return err
					}
				}
			}
			if err := c.RestoreSnapshot(cmd.Context(), data); err != nil {
				return fmt.Errorf("failed to restore the snapshot: %w", err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(map[string]any{"restored": args[0]})
			}
			p.Printf("Restored %s on the cluster (leader %s)\n", args[0], st.Leader)
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}
