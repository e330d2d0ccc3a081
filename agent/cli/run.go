package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/cm"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/logfile"
	"github.com/cardagent/cardagent/agent/nodump"
	"github.com/cardagent/cardagent/pcsc/p11"
	"github.com/cardagent/cardagent/version"
)

// runCmd is `cardagent run`: the card service and the loopback API, until
// the context ends (SIGINT/SIGTERM in cmd/cardagent).
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
	// The agent holds PINs in memory: no core dump may capture one.
	if err := nodump.Disable(); err != nil {
		log.Warn("core dumps stay enabled", zap.Error(err))
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}

	svc := &agent.CardService{
		Log:           log,
		PINPolicy:     cfg.PIN,
		PINCache:      cfg.PIN.CacheWindow(),
		PromptTimeout: cfg.Prompt.Timeout(),

		ExpiryWarningDays: cfg.Expiry.WarningDays,
		RenewalURL:        cfg.RenewalURL(),
	}
	svc.Drivers.PKCS11 = p11.Config{Module: cfg.PKCS11.Module}
	svc.Drivers.PKCS11Kinds = cfg.PKCS11.CardKinds()
	if *module != "" {
		svc.Drivers.PKCS11 = p11.Config{Module: *module}
	}

	prompter, why := choosePrompter(cfg, *pinentry, log)
	if prompter == nil {
		log.Warn("no PIN prompt available: sign-in requests will fail with prompt_unavailable; status and events still work", zap.String("reason", why))
	} else {
		log.Info(why)
	}

	srv, err := api.New(log.Named("api"), svc, prompter, api.Options{
		Ports:            cfg.Listen.Ports(),
		AllowedOrigins:   cfg.AllowedOrigins(),
		MaxConnections:   cfg.Limits.MaxConnections,
		MaxMessageBytes:  int64(cfg.Limits.MaxMessageBytes),
		PromptsPerMinute: cfg.Limits.PromptsPerMinutePerOrigin,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout(),
		RequestTimeout:   cfg.Limits.RequestTimeout(),
		PromptTimeout:    cfg.Prompt.Timeout(),
		Version:          version.Version,
	})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	port, err := srv.Listen()
	if err != nil {
		return err
	}
	origins := cfg.AllowedOrigins()
	log.Info("cardagent starting", zap.String("version", version.Version), zap.Int("port", port),
		zap.String("environment", cfg.Environment), zap.Strings("allowed_origins", origins))
	if len(origins) == 0 {
		log.Warn("NO ALLOWED ORIGINS: every sign-in page will be refused. Set environments.<name>.origins or allowed_origins in " + config.DefaultPath())
	}

	serve := []func(context.Context) error{svc.Serve, srv.Serve}
	if cmc := cfg.CredentialManagement; cmc.Enabled {
		// The NHS Credential Management compatible endpoint (Port Service +
		// signing hub). Its ports may be held for a while by outgoing
		// connections: Serve keeps trying, and doctor reports it.
		cmSrv, err := cm.New(log.Named("cm"), svc, prompter, cm.Options{
			Ports:            cmc.Ports,
			SigningOrigins:   cfg.SigningOrigins(),
			MaxPayloads:      cmc.MaxPayloads,
			MaxPayloadBytes:  cmc.MaxPayloadBytes,
			PromptsPerMinute: cfg.Limits.PromptsPerMinutePerOrigin,
			HandshakeTimeout: cfg.Limits.HandshakeTimeout(),
			RequestTimeout:   cfg.Limits.RequestTimeout(),
			BindRetry:        true,
		})
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		serve = append(serve, cmSrv.Serve)
	}

	// The tray's Quit ends the agent the same way SIGTERM does.
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	sup := traySupervisor(log, cfg, svc, prompter, port, why, quit)
	err = serveAll(ctx, append(serve, sup.Serve)...)
	log.Info("cardagent stopped")
	return err
}

// serveAll runs every fn until ctx ends or one of them fails; then it
// cancels the others and waits for them.
func serveAll(ctx context.Context, fns ...func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, fn := range fns {
		g.Go(func() error {
			defer cancel() // one ending, even without an error, ends all
			if err := fn(ctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}
