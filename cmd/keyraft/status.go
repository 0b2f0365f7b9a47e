package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/api/client"
)

func init() { extraCommands = append(extraCommands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	var (
		f          *clientFlags
		short, api bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of the server(s)",
		Long: `Ask every configured server (--server may list several, comma-separated)
for its status: version, system, uptime and whether its keystore is
reachable. --short prints one line per server, --api also lists the API
routes each server offers. JSON output is one object per server, one per line
(a single object for a single server).

The exit status is non-zero if any server did not answer. (--server has no
-s shorthand here; -s is --short.)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			p := f.printer(cmd)
			var (
				failed   int
				firstErr error
			)
			eps := c.Endpoints()
			for i, ep := range eps {
				st, err := nodeStatus(cmd.Context(), c, ep, api)
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				}
				switch {
				case p.json:
					if p.tty {
						err = p.JSON(st)
					} else {
						err = p.Line(st)
					}
					if err != nil {
						return err
					}
				case short:
					printShortStatus(p, st)
				default:
					if i > 0 {
						p.Printf("\n")
					}
					printStatus(p, st)
				}
			}
			switch {
			case failed == 0:
				return nil
			case len(eps) == 1:
				return fmt.Errorf("failed to get the status of %s: %w", eps[0], firstErr)
			default:
				return fmt.Errorf("%d of %d servers did not answer", failed, len(eps))
			}
		},
	}
	cmd.Flags().BoolVarP(&short, "short", "s", false, "print one line per server")
	cmd.Flags().BoolVar(&api, "api", false, "also list the API routes")
	f = addClientFlags(cmd)
	return cmd
}

// statusJSON is one server's status as `status` prints it. uptime is in
// seconds and keystore_latency in milliseconds, as in /v1/status.
type statusJSON struct {
	Endpoint            string    `json:"endpoint"`
	Online              bool      `json:"online"`
	Error               string    `json:"error,omitempty"`
	ResponseTime        float64   `json:"response_time_ms,omitempty"`
	Version             string    `json:"version,omitempty"`
	OS                  string    `json:"os,omitempty"`
	Arch                string    `json:"arch,omitempty"`
	UpTime              int64     `json:"uptime,omitempty"`
	CPUs                int       `json:"num_cpu,omitempty"`
	UsableCPUs          int       `json:"num_cpu_used,omitempty"`
	HeapAlloc           uint64    `json:"mem_heap_used,omitempty"`
	StackAlloc          uint64    `json:"mem_stack_used,omitempty"`
	KeyStoreLatency     float64   `json:"keystore_latency,omitempty"`
	KeyStoreUnreachable bool      `json:"keystore_unreachable,omitempty"`
	APIs                []apiJSON `json:"apis,omitempty"`
}

// apiJSON is one API route; timeout in seconds.
type apiJSON struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	MaxBody int64  `json:"max_body"`
	Timeout int64  `json:"timeout"`
}

// nodeStatus asks the endpoint ep (one of c's) for its status and, with
// withAPIs, its routes. A failure is returned and also recorded in the
// result's Error, so that it is printed with the other servers.
func nodeStatus(ctx context.Context, c *client.Client, ep string, withAPIs bool) (statusJSON, error) {
	out := statusJSON{Endpoint: ep}
	nc, err := c.Node(ep)
	if err != nil {
		out.Error = err.Error()
		return out, err
	}
	start := time.Now()
	st, err := nc.Status(ctx)
	if err != nil {
		out.Error = err.Error()
		return out, err
	}
	out.Online = true
	out.ResponseTime = float64(time.Since(start).Microseconds()) / 1000
	out.Version, out.OS, out.Arch = st.Version, st.OS, st.Arch
	out.UpTime = int64(st.UpTime / time.Second)
	out.CPUs, out.UsableCPUs = st.CPUs, st.UsableCPUs
	out.HeapAlloc, out.StackAlloc = st.HeapAlloc, st.StackAlloc
	out.KeyStoreUnreachable = st.KeyStoreUnreachable || st.KeyStoreUnavailable
	if !out.KeyStoreUnreachable {
		out.KeyStoreLatency = float64(st.KeyStoreLatency.Microseconds()) / 1000
	}
	if withAPIs {
		apis, err := nc.APIs(ctx)
		if err != nil {
			err = fmt.Errorf("list APIs: %w", err)
			out.Error = err.Error()
			return out, err
		}
		sort.Slice(apis, func(i, j int) bool { return apis[i].Path < apis[j].Path })
		for _, a := range apis {
			out.APIs = append(out.APIs, apiJSON{a.Method, a.Path, a.MaxBody, int64(a.Timeout / time.Second)})
		}
	}
	return out, nil
}

// printShortStatus prints one line: endpoint, state, response time, version.
func printShortStatus(p printer, st statusJSON) {
	if st.Error != "" && !st.Online {
		p.Printf("%-28s offline  %s\n", st.Endpoint, st.Error)
		return
	}
	keystore := "keystore ok"
	if st.KeyStoreUnreachable {
		keystore = "keystore unreachable"
	}
	p.Printf("%-28s online   %7.1fms  %s  %s\n", st.Endpoint, st.ResponseTime, keystore, st.Version)
}

// printStatus prints a server's status as a block of lines.
func printStatus(p printer, st statusJSON) {
	p.Printf("Endpoint   %s\n", st.Endpoint)
	if !st.Online {
		p.Printf("State      offline: %s\n", st.Error)
		return
	}
	p.Printf("State      online (answered in %.1fms)\n", st.ResponseTime)
	p.Printf("Version    %s\n", orDash(st.Version))
	p.Printf("System     %s/%s, %d CPUs (%d usable)\n", st.OS, st.Arch, st.CPUs, st.UsableCPUs)
	p.Printf("Uptime     %s\n", time.Duration(st.UpTime)*time.Second)
	p.Printf("Memory     heap %s, stack %s\n", formatBytes(float64(st.HeapAlloc)), formatBytes(float64(st.StackAlloc)))
	if st.KeyStoreUnreachable {
		p.Printf("Keystore   unreachable\n")
	} else {
		p.Printf("Keystore   reachable (latency %.1fms)\n", st.KeyStoreLatency)
	}
	if len(st.APIs) > 0 {
		p.Printf("\nAPIs:\n")
		for _, a := range st.APIs {
			p.Printf("  %-6s %-28s max body %-9s timeout %s\n", a.Method, a.Path,
				formatBytes(float64(a.MaxBody)), time.Duration(a.Timeout)*time.Second)
		}
	}
	if st.Error != "" {
		p.Printf("Error      %s\n", st.Error)
	}
}

// formatBytes renders a byte count with a binary unit.
func formatBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for n >= unit && i < len(units)-1 {
		n /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
