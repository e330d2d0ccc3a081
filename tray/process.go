package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/expiry"
)

// EnvDebugState names a file where the tray process keeps its current View
// as JSON (tests and support read it).
const EnvDebugState = "CARDAGENT_TRAY_DEBUG_STATE"

// RunUI runs a tray UI: it shows the icon, calls run with it and the
// channel of menu clicks, and returns when run returns, or when ctx ends
// (also while the icon has not appeared yet). trayui.Run is the real one
// (it must be called on the main goroutine).
type RunUI func(ctx context.Context, run func(ui UI, clicks <-chan Click) error) error

// ProcessOptions configure the tray process.
type ProcessOptions struct {
	Log *zap.Logger
	// RunUI is the GUI (trayui.Run in cmd/cardagent-tray); nil: RunProcess
	// returns ErrNoTray. Package tray itself links no GUI library.
	RunUI RunUI
	// DebugState is the file for the current View ("" for none).
	DebugState string
	// StatePath is the notification state file; "" means expiry.StatePath().
	StatePath string
	// Executable runs `<Executable> doctor` for the diagnostics; "" means
	// the cardagent program next to this one (else on PATH).
	Executable string
}

// RunProcess is the tray program, cardagent-tray: it opens the channel its
// agent passed it, shows the icon, and returns when the agent goes away,
// the user quits, or ctx ends. It must be called on the main goroutine.
func RunProcess(ctx context.Context, opts ProcessOptions) error {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	r, w, err := OpenChannel()
	if err != nil {
		return err
	}
	// App.Run closes them too; this is for a UI that never calls run.
	defer r.Close()
	defer w.Close()
	if opts.RunUI == nil {
		return ErrNoTray
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
	var diagnostics func(ctx context.Context) ([]byte, error)
	exe, exeErr := opts.Executable, error(nil)
	if exe == "" {
		exe, exeErr = FindProgram(AgentProgram)
	}
	if exeErr != nil {
		// The menu's "Open diagnostics" shows the agent's status instead.
		log.Warn("no diagnostics report", zap.Error(exeErr))
	} else {
		diagnostics = doctor(exe)
	}
	// Read the agent's channel from the start, not only once the icon is up:
	// when the icon never appears (no notification area, as in a Windows
	// session without Explorer), the agent going away must still end this
	// process instead of leaving it behind.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fromAgent, pump := io.Pipe()
	go func() {
		_, err := io.Copy(pump, r)
		pump.CloseWithError(err) // nil: EOF, as the agent's end closed
		cancel()
	}()
	return opts.RunUI(ctx, func(ui UI, clicks <-chan Click) error {
		app := &App{
			Log:         log,
			UI:          ui,
			Tracker:     tracker,
			DebugState:  opts.DebugState,
			Diagnostics: diagnostics,
		}
		return app.Run(ctx, fromAgent, w, clicks)
	})
}

// doctor runs `exe doctor` and returns its report (its exit status says
// whether anything blocks sign-in; the report is wanted either way).
func doctor(exe string) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		cmd := exec.CommandContext(ctx, exe, "doctor")
		cmd.Env = append(os.Environ(), EnvChannel+"=") // never hand the channel on
		noConsole(cmd)
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
