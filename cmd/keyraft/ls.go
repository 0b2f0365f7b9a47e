package main

import (
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newLsCmd) }

func newLsCmd() *cobra.Command {
	var (
		f                    *clientFlags
		identities, policies bool
	)
	cmd := &cobra.Command{
		Use:   "ls [pattern]",
		Short: "List keys, identities or policies",
		Long: `List the keys (default), identities (-i) or policies (-p) whose names
start with the pattern (everything by default; a trailing '*' is allowed).`,
		Example: `  keyraft ls
  keyraft ls -i
  keyraft ls -p 'minio*'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "keys"
			switch {
			case identities:
				what = "identities"
			case policies:
				what = "policies"
			}
			return runList(cmd, f, args, what)
		},
	}
	cmd.Flags().BoolVarP(&identities, "identities", "i", false, "list identities")
	cmd.Flags().BoolVarP(&policies, "policies", "p", false, "list policies")
	cmd.MarkFlagsMutuallyExclusive("identities", "policies")
	f = addClientFlags(cmd)
	return cmd
}
