package main

import (
	"context"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/trayproto"
)

func TestRun(t *testing.T) {
	uiNotCalled := func(t *testing.T) tray.RunUI {
		return func(context.Context, func(tray.UI, <-chan tray.Click) error) error {
			t.Error("the UI ran")
			return nil
		}
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-h"}, exitOK, "not started by hand"},
		{"bad flag", []string{"--nope"}, exitUsage, "flag provided but not defined"},
		{"extra argument", []string{"tray"}, exitUsage, `unexpected argument "tray"`},
		{"bad log level", []string{"--log-level", "loud"}, exitUsage, `log level "loud"`},
		{"started by hand", []string{"--log-level", "debug"}, exitFailure, "no channel to the agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(trayproto.EnvChannel, "")
			var stderr strings.Builder
			if code := run(context.Background(), tc.args, &stderr, uiNotCalled(t)); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}
