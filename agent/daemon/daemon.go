// Package daemon is the agent process: it builds the card service, the
// loopback API, the Credential Management endpoint, the PIN prompt and the
// tray's supervisor from a configuration, and runs them together.
//
// `cardagent run` (agent/cli) parses its flags, loads the configuration and
// opens the log, then calls New and Run; everything the agent does while it
// runs is wired here, once.
package daemon

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/cm"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/desktoplock"
	"github.com/cardagent/cardagent/agent/nodump"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/pcsc/p11"
	"github.com/cardagent/cardagent/version"
)

// Options are what New needs besides the configuration.
type Options struct {
	// Log is the agent's logger; each part gets a named child.
	Log *zap.Logger
	// PKCS11Module, when set, overrides the configuration's vendor PKCS#11
	// module (`cardagent run --pkcs11-module`).
	PKCS11Module string
	// Pinentry, when set, forces pinentry at this path for every PIN prompt
	// (`cardagent run --pinentry`; development and tests).
	Pinentry string
}

// Daemon is one running agent. Build it with New; Run serves until its
// context ends.
type Daemon struct {
	log       *zap.Logger
	cfg       config.Config
	svc       *agent.CardService
	prompter  prompt.Prompter // nil when no prompt can be shown
	promptWhy string
	api       *api.Server
	cm        *cm.Server // nil when the endpoint is disabled
}

// New builds the agent from cfg (already merged: defaults < file < IT
// policy). Its errors are configuration errors; nothing is bound or started
// until Run.
func New(cfg config.Config, o Options) (*Daemon, error) {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	d := &Daemon{log: log, cfg: cfg}
	d.svc = &agent.CardService{
		Log:           log,
		PINPolicy:     cfg.PIN,
		PINCache:      cfg.PIN.CacheWindow(),
		PromptTimeout: cfg.Prompt.Timeout(),

		ExpiryWarningDays: cfg.Expiry.WarningDays,
		RenewalURL:        cfg.RenewalURL(),
	}
	d.svc.Removal, d.svc.RemovalGrace = cfg.Session.Removal, cfg.Session.RemovalGrace()
	if cfg.Session.Removal == config.RemovalLock {
		locker := desktoplock.Locker{Command: cfg.Session.LockCommand}
		d.svc.LockDesktop = locker.Lock
		log.Info("removal policy: the desktop is locked when the card that signed in is removed",
			zap.String("lock", locker.Method()), zap.Duration("grace", cfg.Session.RemovalGrace()))
	}
	d.svc.Drivers.PKCS11 = p11.Config{Module: cfg.PKCS11.Module}
	d.svc.Drivers.PKCS11Kinds = cfg.PKCS11.CardKinds()
	if o.PKCS11Module != "" {
		d.svc.Drivers.PKCS11 = p11.Config{Module: o.PKCS11Module}
	}

	d.prompter, d.promptWhy = choosePrompter(cfg, o.Pinentry, log)

	var err error
	d.api, err = api.New(log.Named("api"), d.svc, d.prompter, api.Options{
		Ports:            cfg.Listen.Ports(),
		AllowedOrigins:   cfg.AllowedOrigins(),
		MaxConnections:   cfg.Limits.MaxConnections,
		MaxMessageBytes:  int64(cfg.Limits.MaxMessageBytes),
		PromptsPerMinute: cfg.Limits.PromptsPerMinutePerOrigin,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout(),
		RequestTimeout:   cfg.Limits.RequestTimeout(),
		PromptTimeout:    cfg.Prompt.Timeout(),
		Version:          version.Version,
		SessionEnded:     cfg.Session.Removal == config.RemovalNotify || cfg.Session.Removal == config.RemovalLock,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if cmc := cfg.CredentialManagement; cmc.Enabled {
		// The NHS Credential Management compatible endpoint (Port Service +
		// signing hub). Its ports may be held for a while by outgoing
		// connections: Serve keeps trying, and doctor reports it.
		d.cm, err = cm.New(log.Named("cm"), d.svc, d.prompter, cm.Options{
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
			return nil, fmt.Errorf("configuration: %w", err)
		}
	}
	return d, nil
}

// Run binds the API's port and serves everything until ctx ends, the tray's
// Quit is chosen, or a part fails; then it stops the others and returns.
func (d *Daemon) Run(ctx context.Context) error {
	log := d.log
	// The agent holds PINs in memory: no core dump may capture one.
	if err := nodump.Disable(); err != nil {
		log.Warn("core dumps stay enabled", zap.Error(err))
	}
	if d.prompter == nil {
		log.Warn("no PIN prompt available: sign-in requests will fail with prompt_unavailable; status and events still work", zap.String("reason", d.promptWhy))
	} else {
		log.Info(d.promptWhy)
	}
	port, err := d.api.Listen()
	if err != nil {
		return err
	}
	origins := d.cfg.AllowedOrigins()
	log.Info("cardagent starting", zap.String("version", version.Version), zap.Int("port", port),
		zap.String("environment", d.cfg.Environment), zap.Strings("allowed_origins", origins))
	if len(origins) == 0 {
		log.Warn("NO ALLOWED ORIGINS: every sign-in page will be refused. Set environments.<name>.origins or allowed_origins in " + config.DefaultPath())
	}

	serve := []func(context.Context) error{d.svc.Serve, d.api.Serve}
	if d.cm != nil {
		serve = append(serve, d.cm.Serve)
	}
	// The tray's Quit ends the agent the same way SIGTERM does.
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	sup := traySupervisor(log, d.cfg, d.svc, d.prompter, port, d.promptWhy, quit)
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
