package cli

import (
	"context"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/daemon"
	"github.com/cardagent/cardagent/agent/logfile"
)

// runCmd is `cardagent run`: it reads the flags, the configuration and the
// log settings, then runs the agent (agent/daemon) until the context ends
// (SIGINT/SIGTERM in cmd/cardagent) or the tray's Quit.
func runCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlags("run", env)
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath()+")")
	format := fs.String("log-format", "console", "log format: console or json (overrides the configuration)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error (overrides the configuration)")
	module := fs.String("pkcs11-module", "", "path of a vendor PKCS#11 module to serve series 8 cards through (overrides the configuration)")
	pinentry := fs.String("pinentry", "", "path of a pinentry program for the PIN prompt (overrides the configuration; for development and tests)")
	logDir := fs.String("log-dir", "", `directory of the rotated JSON log file (default: the per-OS log directory; "none": no log file)`)
	consoleLog := fs.String("console-log", "always", `when the log also goes to standard error: "always", or "fallback" (only without a log file; cardagent supervise uses it)`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *consoleLog != "always" && *consoleLog != "fallback" {
		return usageError{fmt.Sprintf("--console-log %q: want always or fallback", *consoleLog)}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg, err := config.LoadEffective(*cfgPath) // defaults < file < IT policy
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if !set["log-format"] && cfg.Log.Format != "" {
		*format = cfg.Log.Format
	}
	if !set["log-level"] && cfg.Log.Level != "" {
		*level = cfg.Log.Level
	}
	var (
		log      *zap.Logger
		closeLog = func() error { return nil }
	)
	if *logDir == "none" {
		log, err = logfile.ConsoleLogger(env.Stderr, *format, *level)
	} else {
		// The file always gets JSON at the configured level; the console keeps *format.
		log, closeLog, err = logfile.OpenLogger(logfile.Options{Dir: *logDir, ConsoleFallback: *consoleLog == "fallback"}, env.Stderr, *format, *level)
	}
	if err != nil {
		return usageError{err.Error()}
	}
	defer closeLog()
	d, err := daemon.New(cfg, daemon.Options{Log: log, PKCS11Module: *module, Pinentry: *pinentry})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
