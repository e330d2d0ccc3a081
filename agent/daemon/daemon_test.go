package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestRemovalPolicyWiring: the configuration's removal policy reaches the
// card service, and with "lock" the configured command is what locks.
func TestRemovalPolicyWiring(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "locked")
	script := filepath.Join(dir, "lock.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho locked >> \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		removal string
		lock    bool
	}{{config.RemovalNone, false}, {config.RemovalNotify, false}, {config.RemovalLock, true}} {
		t.Run(tc.removal, func(t *testing.T) {
			cfg := config.Default()
			cfg.Listen.Port = 0
			cfg.CredentialManagement.Enabled = false
			cfg.Session = config.Session{Removal: tc.removal, RemovalGraceSeconds: 7, LockCommand: []string{script, rec}}
			d, err := New(cfg, Options{Log: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			if d.svc.Removal != tc.removal || d.svc.RemovalGrace != 7*time.Second {
				t.Errorf("card service removal %q grace %v", d.svc.Removal, d.svc.RemovalGrace)
			}
			if (d.svc.LockDesktop != nil) != tc.lock {
				t.Fatalf("LockDesktop set: %v, want %v", d.svc.LockDesktop != nil, tc.lock)
			}
			if !tc.lock {
				return
			}
			if err := d.svc.LockDesktop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(rec); err != nil || string(b) != "locked\n" {
				t.Errorf("lock command record %q, %v", b, err)
			}
		})
	}
}
