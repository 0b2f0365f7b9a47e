package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

// describeSeal is the seal key line of `keyraft cluster status`.
func describeSeal(s client.SealStatus) string {
	out := orDash(s.ID)
	if !s.RotatedAt.IsZero() {
		out += ", rotated in " + formatTime(s.RotatedAt)
	}
	if s.RotatingTo != "" {
		out += fmt.Sprintf(" (rotating to %s: %d records to re-seal)", s.RotatingTo, s.Remaining)
	}
	return out
}

func newRotateSealCmd() *cobra.Command {
	var (
		f      *clientFlags
		noWait bool
		poll   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate-seal",
		Short: "Rotate the cluster's seal key (Keyraft)",
		Long: `Rotate the key that seals the cluster's cached key material: the leader
writes a new seal key to the keystore, re-seals every cached key with it in
batches through Raft, then removes the old seal key from the keystore.
Requests keep being served throughout. An interrupted rotation (a leader
change, a restart) resumes on its own; running the command again joins the
rotation in progress. By default the command waits until the rotation has
finished and prints how long it took.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			start := time.Now()
			st, err := c.RotateSeal(cmd.Context())
			if err != nil {
				return fmt.Errorf("failed to rotate the seal key: %w", err)
			}
			p := f.printer(cmd)
			if noWait || st.RotatingTo == "" {
				if p.json {
					return p.JSON(st)
				}
				p.Printf("Seal key: %s\n", describeSeal(st))
				return nil
			}
			target := st.RotatingTo
			fmt.Fprintf(cmd.ErrOrStderr(), "rotating the seal key from %s to %s (%d records)\n", st.ID, target, st.Remaining)
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-t.C:
				}
				cs, err := c.ClusterStatus(cmd.Context())
				if err != nil {
					continue // a leader change: ask again
				}
				if cs.Seal.ID == target && cs.Seal.RotatingTo == "" {
					if p.json {
						return p.JSON(cs.Seal)
					}
					p.Printf("Seal key: %s; the rotation took %v\n", describeSeal(cs.Seal), time.Since(start).Round(time.Millisecond))
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the rotation has begun")
	cmd.Flags().DurationVar(&poll, "poll", 200*time.Millisecond, "how often to check the rotation's progress")
	f = addClientFlags(cmd)
	return cmd
}
