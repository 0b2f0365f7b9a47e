package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newEnclaveCmd) }

func newEnclaveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enclave",
		Short: "Manage enclaves: isolated sets of keys, policies and identities",
		Long: `Manage enclaves. An enclave isolates a tenant's keys, policies and
identities; clients select one with the Kes-Enclave header (MinIO's
MINIO_KMS_KES_ENCLAVE, the CLI's --enclave). Creating and deleting enclaves
needs the cluster admin; an enclave's admin manages everything inside it.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newEnclaveCreateCmd(), newEnclaveInfoCmd(), newEnclaveLsCmd(), newEnclaveRmCmd())
	return cmd
}

func newEnclaveCreateCmd() *cobra.Command {
	var (
		f     *clientFlags
		admin string
	)
	cmd := &cobra.Command{
		Use:   "create <name> --admin <identity>",
		Short: "Create an enclave with its admin identity",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if admin == "" {
				return fmt.Errorf("--admin is required")
			}
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.CreateEnclave(cmd.Context(), args[0], admin); err != nil {
					return fmt.Errorf("failed to create enclave %q: %w", args[0], err)
				}
				return done(p, "created", args[0])
			})
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "", "identity of the enclave's admin")
	f = addClientFlags(cmd)
	return cmd
}

func newEnclaveInfoCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "info <name>",
		Short: "Describe an enclave",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				info, err := c.DescribeEnclave(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("failed to describe enclave %q: %w", args[0], err)
				}
				if p.json {
					return p.JSON(info)
				}
				p.Printf("Name        %s\nAdmin       %s\nCreated at  %s\nCreated by  %s\n",
					info.Name, orDash(info.Admin), formatTime(info.CreatedAt), orDash(info.CreatedBy))
				return nil
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newEnclaveLsCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "ls [prefix]",
		Short: "List enclaves",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = listPrefix(args[0])
			}
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				names, err := c.ListEnclaves(cmd.Context(), prefix)
				if err != nil {
					return fmt.Errorf("failed to list enclaves: %w", err)
				}
				if p.json {
					return p.JSON(names)
				}
				for _, n := range names {
					p.Printf("%s\n", n)
				}
				return nil
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newEnclaveRmCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "rm <name>",
		Short: "Delete an enclave with all its keys, policies and identities",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.DeleteEnclave(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("failed to delete enclave %q: %w", args[0], err)
				}
				return done(p, "deleted", args[0])
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newPolicyCreateCmd() *cobra.Command {
	var (
		f           *clientFlags
		allow, deny []string
	)
	cmd := &cobra.Command{
		Use:   "create <name> --allow PATTERN... [--deny PATTERN...]",
		Short: "Create or replace a policy in the enclave",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.WritePolicy(cmd.Context(), args[0], allow, deny); err != nil {
					return fmt.Errorf("failed to write policy %q: %w", args[0], err)
				}
				return done(p, "written", args[0])
			})
		},
	}
	cmd.Flags().StringSliceVar(&allow, "allow", nil, "allowed API path patterns (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&deny, "deny", nil, "denied API path patterns (repeat or comma-separate)")
	f = addClientFlags(cmd)
	return cmd
}

func newPolicyAssignCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "assign <policy> <identity>",
		Short: "Assign an identity to a policy in the enclave",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.AssignPolicy(cmd.Context(), args[0], args[1]); err != nil {
					return fmt.Errorf("failed to assign policy %q: %w", args[0], err)
				}
				return done(p, "assigned", args[1])
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newPolicyRmCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "rm <name>",
		Short: "Delete a policy (and its identity assignments) in the enclave",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.DeletePolicy(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("failed to delete policy %q: %w", args[0], err)
				}
				return done(p, "deleted", args[0])
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newIdentityRmCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "rm <identity>",
		Short: "Remove an identity's policy assignment in the enclave",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, f, func(c *client.Client, p printer) error {
				if err := c.DeleteIdentity(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("failed to delete identity %q: %w", args[0], err)
				}
				return done(p, "deleted", args[0])
			})
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// withClient builds the client from f and runs fn with it.
func withClient(cmd *cobra.Command, f *clientFlags, fn func(*client.Client, printer) error) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	return fn(c, f.printer(cmd))
}

// done prints the outcome of a write command.
func done(p printer, what, name string) error {
	if p.json {
		return p.JSON(map[string]string{what: name})
	}
	p.Printf("%s %s\n", what, name)
	return nil
}
