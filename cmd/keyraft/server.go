package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/internal/server"
)

func newServerCmd() *cobra.Command {
	var (
		configFile string
		addr       string
		dev        bool
		auth       string
		pprofAddr  string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Keyraft node",
		Long: `Run a Keyraft node.

  keyraft server --dev                 one-node cluster in a temporary directory,
                                        fs keystore, self-signed certificate and a
                                        fresh admin API key (printed)
  keyraft server --config FILE         run from a KES-style YAML config file

--auth on|off sets tls.auth (client certificate chain verification), as
KES's --auth did; --addr overrides the config's address. SIGHUP reloads the
TLS certificates and the policies. --pprof 127.0.0.1:6060 serves Go runtime
profiles on a loopback address (off by default).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev == (configFile != "") {
				return errors.New("use exactly one of --dev and --config")
			}
			if pprofAddr != "" {
				logger := hclog.New(&hclog.LoggerOptions{Name: "keyraft.pprof", Output: os.Stderr})
				if _, err := startPprof(cmd.Context(), pprofAddr, logger); err != nil {
					return err
				}
			}
			return runServer(cmd, configFile, addr, auth, dev)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "path to the server config file")
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (default from config, or 0.0.0.0:7373)")
	cmd.Flags().BoolVar(&dev, "dev", false, "run a throw-away development server")
	cmd.Flags().StringVar(&auth, "auth", "", "client certificate verification: on or off (sets tls.auth)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go runtime profiles on this loopback address (off by default)")
	return cmd
}

func runServer(cmd *cobra.Command, configFile, addr, auth string, dev bool) error {
	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "keyraft", Level: hclog.Info, Output: os.Stderr})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		cfg    *config.Config
		banner func(*server.Server)
		err    error
	)
	if dev {
		if addr == "" {
			addr = "127.0.0.1:7373"
		}
		dir, err := os.MkdirTemp("", "keyraft-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var key interface{ String() string }
		devCfg, apiKey, err := server.DevConfig(dir, addr)
		if err != nil {
			return err
		}
		cfg, key = devCfg, apiKey
		banner = func(s *server.Server) {
			fmt.Fprintf(cmd.OutOrStdout(), "Keyraft development server (data in %s, deleted on exit)\n\n", dir)
			fmt.Fprintf(cmd.OutOrStdout(), "  Endpoint:  https://%s\n", s.Addr())
			fmt.Fprintf(cmd.OutOrStdout(), "  API key:   %s\n", key.String())
			fmt.Fprintf(cmd.OutOrStdout(), "  Identity:  %s (admin)\n\n", apiKey.Identity())
			fmt.Fprintf(cmd.OutOrStdout(), "  export KES_SERVER=https://%s\n  export KES_API_KEY=%s\n\n", s.Addr(), key.String())
		}
	} else {
		if cfg, err = loadServerConfig(configFile, addr, auth); err != nil {
			return err
		}
		banner = func(s *server.Server) {
			admin := cfg.Admin
			if !cfg.AdminEnabled() {
				admin = "<disabled>"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Keyraft node %s serving https://%s (admin %s)\n", cfg.Cluster.NodeID, s.Addr(), admin)
		}
	}
	if !cfg.Log.Error.Off() && cfg.Log.Error.Level() != hclog.NoLevel {
		logger.SetLevel(cfg.Log.Error.Level())
	}

	server.LockMemory(logger)
	ver, commit := buildInfo()
	logger.Info("keyraft starting", "version", ver, "commit", commit)
	srv, err := server.Start(ctx, cfg, server.Options{Logger: logger, Version: ver, Commit: commit})
	if err != nil {
		return err
	}
	banner(srv)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			return srv.Close()
		case <-hup:
			if dev {
				continue
			}
			next, err := loadServerConfig(configFile, addr, auth)
			if err == nil {
				err = srv.Reload(ctx, next)
			}
			if err != nil {
				logger.Error("reload failed; keeping the running configuration", "error", err)
				continue
			}
			logger.Info("reloaded TLS certificates and policies")
		}
	}
}

// loadServerConfig loads the config file and applies the command-line
// overrides --addr and --auth.
func loadServerConfig(file, addr, auth string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	if addr != "" {
		cfg.Address = addr
	}
	// A node with nobody to join starts (or restarts) its own cluster.
	if len(cfg.Cluster.Join) == 0 {
		cfg.Cluster.Bootstrap = true
	}
	switch auth {
	case "":
	case "on", "off":
		cfg.TLS.Auth = auth
	default:
		return nil, fmt.Errorf("--auth: must be on or off, not %q", auth)
	}
	return cfg, nil
}
