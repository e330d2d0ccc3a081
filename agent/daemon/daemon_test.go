package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/prompt"
)

func TestChoosePrompter(t *testing.T) {
	dir := t.TempDir()
	pe := filepath.Join(dir, "pinentry")
	if err := os.WriteFile(pe, []byte("#!/bin/sh\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Prompt.Pinentry = pe

	for _, tc := range []struct {
		name, backend, flag string
		want                string // "auto", "pinentry", "dialog", "" for none
	}{
		{"auto", config.BackendAuto, "", "auto"},
		{"pinentry", config.BackendPinentry, "", "pinentry"},
		{"dialog", config.BackendDialog, "", "dialog"},
		{"flag forces pinentry", config.BackendDialog, pe, "pinentry"},
		{"flag with a missing program", config.BackendAuto, filepath.Join(dir, "missing"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Prompt.Backend = tc.backend
			p, why := choosePrompter(c, tc.flag, zap.NewNop())
			if why == "" {
				t.Error("no reason for the log")
			}
			var got string
			switch p.(type) {
			case *prompt.Auto:
				got = "auto"
			case *prompt.Pinentry:
				got = "pinentry"
			case *prompt.Dialog:
				got = "dialog"
			}
			if got != tc.want {
				t.Errorf("prompter %T (%s), want %s", p, why, tc.want)
			}
		})
	}
}

func TestTraySupervisor(t *testing.T) {
	cfg := config.Default()
	cfg.Environment = "development"
	cfg.Tray.HideQuit = true
	cfg.Expiry.WarningDays, cfg.Expiry.UrgentDays = 60, 7
	svc := &agent.CardService{ExpiryWarningDays: 60}
	quit := false
	s := traySupervisor(zap.NewNop(), cfg, svc, nil, 43802, "PIN prompts: pinentry", func() { quit = true })
	info := s.Host.Info()
	if info.APIPort != 43802 || !info.HideQuit || info.WarnDays != 60 || info.UrgentDays != 7 || info.Environment != "development" || !strings.Contains(info.PromptBackend, "pinentry") {
		t.Errorf("agent info %+v", info)
	}
	s.OnQuit()
	if !quit || s.Host.Backend != svc {
		t.Error("supervisor not wired to the card service and the quit function")
	}
}
