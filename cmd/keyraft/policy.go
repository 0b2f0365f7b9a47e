package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newPolicyCmd) }

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Inspect and manage policies",
		Long: `Inspect policies, and manage the policies of an enclave. Policies from the
server's config file are applied by the cluster at start and on SIGHUP;
policies written with 'policy create' live in the replicated state.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPolicyInfoCmd(), newPolicyLsCmd(), newPolicyShowCmd(),
		newPolicyCreateCmd(), newPolicyAssignCmd(), newPolicyRmCmd())
	return cmd
}

// policyInfoJSON is the JSON form of `policy info`.
type policyInfoJSON struct {
	Name      string     `json:"name"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

func newPolicyInfoCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "info <name>",
		Short: "Show a policy's metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			info, err := c.DescribePolicy(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("failed to describe policy %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				return p.JSON(policyInfoJSON{Name: info.Name, CreatedAt: timePtr(info.CreatedAt), CreatedBy: info.CreatedBy})
			}
			p.Printf("Name        %s\n", info.Name)
			p.Printf("Created at  %s\n", formatTime(info.CreatedAt))
			p.Printf("Created by  %s\n", orDash(info.CreatedBy))
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

func newPolicyLsCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:     "ls [pattern]",
		Aliases: []string{"list"},
		Short:   "List policies",
		Long:    "List the policies whose names start with the pattern (all by default).",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd, f, args, "policies")
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// policyJSON is the JSON form of `policy show`: patterns as arrays.
type policyJSON struct {
	Name      string     `json:"name"`
	Allow     []string   `json:"allow"`
	Deny      []string   `json:"deny"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

func newPolicyShowCmd() *cobra.Command {
	var f *clientFlags
	cmd := &cobra.Command{
		Use:   "show <name>",
		Short: "Show a policy's allow and deny rules",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			pol, err := c.ReadPolicy(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("failed to read policy %q: %w", args[0], err)
			}
			p := f.printer(cmd)
			if p.json {
				out := policyJSON{Name: pol.Name, Allow: pol.Allow, Deny: pol.Deny, CreatedAt: timePtr(pol.CreatedAt), CreatedBy: pol.CreatedBy}
				if out.Allow == nil {
					out.Allow = []string{}
				}
				if out.Deny == nil {
					out.Deny = []string{}
				}
				return p.JSON(out)
			}
			p.Printf("Policy %s\n", pol.Name)
			printPatterns(p, "Allow", pol.Allow)
			printPatterns(p, "Deny", pol.Deny)
			return nil
		},
	}
	f = addClientFlags(cmd)
	return cmd
}

// printPatterns prints a titled list of policy patterns.
func printPatterns(p printer, title string, patterns []string) {
	p.Printf("\n%s:\n", title)
	if len(patterns) == 0 {
		p.Printf("  (none)\n")
	}
	for _, pat := range patterns {
		p.Printf("  %s\n", pat)
	}
}

// timePtr returns &t, or nil for the zero time (omitted from JSON).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
