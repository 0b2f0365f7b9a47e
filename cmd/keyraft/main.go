// Command keyraft is Keyraft's one binary: the server and the operator CLI
// (identity, key, policy, status, metric, log, cluster and bench commands).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "keyraft",
		Short:         "Keyraft: a clustered KMS that speaks the KES v1 API",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("keyraft {{.Version}}\n")
	root.AddCommand(newServerCmd())
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	return root
}

// extraCommands lets other files of this package register commands.
var extraCommands []func() *cobra.Command
