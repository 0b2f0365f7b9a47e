package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/keyraft/keyraft/internal/config"
	"github.com/keyraft/keyraft/store"
	"github.com/keyraft/keyraft/store/aws"
	"github.com/keyraft/keyraft/store/fs"
)

// openStore opens the keystore the config names.
func openStore(ctx context.Context, cfg *config.Config, logger hclog.Logger) (store.Store, error) {
	switch {
	case cfg.Keystore.FS != nil:
		st, err := fs.Open(cfg.Keystore.FS.Path)
		if err != nil {
			return nil, fmt.Errorf("server: keystore.fs: %w", err)
		}
		return st, nil
	case cfg.Keystore.AWS != nil:
		return openAWS(ctx, cfg.Keystore.AWS, logger)
	}
	return nil, errors.New("server: no keystore specified")
}

func openAWS(ctx context.Context, c *config.AWS, logger hclog.Logger) (store.Store, error) {
	st, err := aws.Open(ctx, aws.Config{
		Endpoint:     c.Endpoint,
		Region:       c.Region,
		KMSKey:       c.KMSKey,
		Prefix:       c.Prefix,
		AccessKey:    c.Credentials.AccessKey,
		SecretKey:    c.Credentials.SecretKey,
		SessionToken: c.Credentials.Token,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("server: keystore.aws.secretsmanager: %w", err)
	}
	return st, nil
}
