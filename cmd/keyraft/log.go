package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newLogCmd) }

func newLogCmd() *cobra.Command {
	var (
		f                  *clientFlags
		audit, errorStream bool
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Stream a server's audit or error log",
		Long: `Subscribe to a server's audit log (default) or error log and print the
events as they happen, until interrupted (Ctrl-C). With several endpoints
one server is streamed. JSON output is one object per line: audit events as
{"time","request":{"ip","path","identity"},"response":{"code","time"}} with
the response time in milliseconds, error events as {"message"}.`,
		Example: `  keyraft log
  keyraft log --error --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p := f.printer(cmd)
			if errorStream {
				return streamErrorLog(ctx, c, p)
			}
			return streamAuditLog(ctx, c, p)
		},
	}
	cmd.Flags().BoolVar(&audit, "audit", false, "stream the audit log (default)")
	cmd.Flags().BoolVar(&errorStream, "error", false, "stream the error log")
	cmd.MarkFlagsMutuallyExclusive("audit", "error")
	f = addClientFlags(cmd)
	return cmd
}

// auditJSON is the JSON form of an audit event (KES v1 shape).
type auditJSON struct {
	Time    time.Time `json:"time"`
	Request struct {
		IP       string `json:"ip,omitempty"`
		Path     string `json:"path"`
		Identity string `json:"identity,omitempty"`
		Enclave  string `json:"enclave,omitempty"`
	} `json:"request"`
	Response struct {
		Code int   `json:"code"`
		Time int64 `json:"time"` // milliseconds
	} `json:"response"`
}

// streamAuditLog prints audit events until ctx ends (then it returns nil),
// the server ends the stream (nil) or the stream fails.
func streamAuditLog(ctx context.Context, c *client.Client, p printer) error {
	s, err := c.AuditLog(ctx)
	if err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("failed to subscribe to the audit log: %w", err))
	}
	defer s.Close()
	if !p.json {
		p.Printf("%-19s  %4s  %8s  %-16s  %-15s  %s\n", "Time", "Code", "Latency", "Identity", "IP", "Path")
	}
	for s.Next() {
		ev := s.Event()
		if p.json {
			var out auditJSON
			out.Time = ev.Time
			out.Request.IP, out.Request.Path = ev.Request.IP, ev.Request.Path
			out.Request.Identity, out.Request.Enclave = ev.Request.Identity, ev.Request.Enclave
			out.Response.Code, out.Response.Time = ev.Response.StatusCode, ev.Response.Time.Milliseconds()
			if err := p.Line(out); err != nil {
				return err
			}
			continue
		}
		id := ev.Request.Identity
		if len(id) > 16 {
			id = id[:15] + "…"
		}
		p.Printf("%-19s  %4d  %8s  %-16s  %-15s  %s\n", ev.Time.Local().Format("2006-01-02 15:04:05"),
			ev.Response.StatusCode, ev.Response.Time, orDash(id), orDash(ev.Request.IP), ev.Request.Path)
	}
	return ignoreCanceled(ctx, streamErr(s.Err(), "audit"))
}

// streamErrorLog prints error events like streamAuditLog.
func streamErrorLog(ctx context.Context, c *client.Client, p printer) error {
	s, err := c.ErrorLog(ctx)
	if err != nil {
		return ignoreCanceled(ctx, fmt.Errorf("failed to subscribe to the error log: %w", err))
	}
	defer s.Close()
	for s.Next() {
		ev := s.Event()
		if p.json {
			if err := p.Line(ev); err != nil {
				return err
			}
			continue
		}
		p.Printf("%s\n", ev.Message)
	}
	return ignoreCanceled(ctx, streamErr(s.Err(), "error"))
}

// streamErr wraps a stream's final error (nil stays nil).
func streamErr(err error, which string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s log stream: %w", which, err)
}
