package tray

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/expiry"
)

// EnvDebugState names a file where the tray process keeps its current View
// as JSON (tests and support read it).
const EnvDebugState = "CARDAGENT_TRAY_DEBUG_STATE"

// ProcessOptions configure the tray process.
type ProcessOptions struct {
	Log *zap.Logger
	// DebugState is the file for the current View ("" for none).
	DebugState string
	// StatePath is the notification state file; "" means expiry.StatePath().
	StatePath string
	// Executable runs `<Executable> doctor` for the diagnostics; "" means this program.
	Executable string
}

// RunProcess is `cardagent tray`: it opens the channel its agent passed
// it, shows the icon, and returns when the agent goes away, the user
// quits, or ctx ends. It must be called on the main goroutine.
func RunProcess(ctx context.Context, opts ProcessOptions) error {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	r, w, err := OpenChannel()
	if err != nil {
		return err
	}
	if !TraySupported {
		r.Close()
		w.Close()
		return runUI(ctx, nil)
	}
	statePath := opts.StatePath
	if statePath == "" {
		if statePath, err = expiry.StatePath(); err != nil {
			log.Warn("no place to remember expiry notifications: they may repeat", zap.Error(err))
		}
	}
	tracker := &expiry.Tracker{}
	if statePath != "" {
		tracker.Store = expiry.FileStore{Path: statePath}
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	return runUI(ctx, func(ui UI, clicks <-chan Click) error {
		app := &App{
			Log:         log,
			UI:          ui,
			Tracker:     tracker,
			DebugState:  opts.DebugState,
			Diagnostics: doctor(exe),
		}
		return app.Run(ctx, r, w, clicks)
	})
}

// doctor runs `exe doctor` and returns its report (its exit status says
// whether anything blocks sign-in; the report is wanted either way).
func doctor(exe string) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		cmd := exec.CommandContext(ctx, exe, "doctor")
		cmd.Env = append(os.Environ(), EnvChannel+"=") // never hand the channel on
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 { // usage error: no such command in this build
			return nil, fmt.Errorf("%s doctor: %w", exe, err)
		}
		if err != nil && len(out) == 0 {
			return nil, err
		}
		return out, nil
	}
}
