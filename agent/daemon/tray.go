package daemon

import (
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/trayhost"
	"github.com/cardagent/cardagent/tray/trayproto"
	"github.com/cardagent/cardagent/version"
)

// The tray icon itself is the separate program cardagent-tray
// (cmd/cardagent-tray), which the trayhost.TraySupervisor built here
// starts: this package, and so cmd/cardagent, never links the GUI library.

// choosePrompter picks the PIN prompt for `cardagent run`: the --pinentry
// flag forces pinentry; otherwise the configured backend, where "auto" is
// the desktop dialog when a display and zenity are there, else pinentry
// (decided at each prompt). It returns nil and the reason when none can be
// built, else the prompter and a sentence for the log.
func choosePrompter(cfg config.Config, pinentryFlag string, log *zap.Logger) (prompt.Prompter, string) {
	path := cfg.Prompt.Pinentry
	if pinentryFlag != "" {
		path = pinentryFlag
	}
	var pe prompt.Prompter
	if p, _ := newPinentry(path, log); p != nil {
		pe = p
	}
	if pinentryFlag != "" {
		if pe == nil {
			return nil, "pinentry program " + pinentryFlag + " not found"
		}
		return pe, "PIN prompts: pinentry (--pinentry)"
	}
	dialog := &prompt.Dialog{
		Log:     log.Named("dialog"),
		Timeout: cfg.Prompt.Timeout(),
		Policy:  cfg.PIN,
	}
	return prompt.Choose(cfg.Prompt.Backend, dialog, pe)
}

// traySupervisor builds the tray supervisor for `cardagent run` (it runs
// cardagent-tray, installed next to cardagent): svc is
// the card service, p the agent's prompter (the tray's Change PIN and
// Unblock ask through it, in the agent), port the API's port, promptWhy
// the sentence choosePrompter returned, quit what the tray's Quit does.
func traySupervisor(log *zap.Logger, cfg config.Config, svc *agent.CardService, p prompt.Prompter, port int, promptWhy string, quit func()) *trayhost.TraySupervisor {
	info := trayproto.AgentInfo{
		Version:       version.Version,
		APIPort:       port,
		Environment:   cfg.Environment,
		RenewalURL:    cfg.RenewalURL(),
		PromptBackend: promptWhy,
		HideQuit:      cfg.Tray.HideQuit,
		WarnDays:      cfg.Expiry.WarningDays,
		UrgentDays:    cfg.Expiry.UrgentDays,
	}
	return &trayhost.TraySupervisor{
		Log: log.Named("tray"),
		Host: &trayhost.Host{
			Log:      log.Named("tray"),
			Backend:  svc,
			Prompter: p,
			Info: func() trayproto.AgentInfo {
				i := info
				if a := svc.Activity(); a != nil {
					i.Activity = a.Words()
				}
				return i
			},
		},
		OnQuit: quit,
	}
}
