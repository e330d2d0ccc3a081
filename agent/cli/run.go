package cli

import (
	"context"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/pcsc/p11"
)

func runCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlags("run", env)
	format := fs.String("log-format", "console", "log format: console or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	module := fs.String("pkcs11-module", "", "path of a vendor PKCS#11 module to serve series 8 cards through")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := agent.NewLogger(env.Stderr, *format, *level)
	if err != nil {
		return usageError{err.Error()}
	}
	defer log.Sync()
	d := &agent.Daemon{Log: log}
	if *module != "" {
		d.Drivers.PKCS11 = p11.Config{Module: *module}
	}
	log.Info("cardagent starting", zap.String("version", agent.Version))
	err = d.Serve(ctx)
	log.Info("cardagent stopped")
	return err
}
