package tray

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// ErrNoTray is returned by RunProcess when the program has no tray UI (a
// cardagent-tray built without cgo, or with the notray tag); the program
// then exits with trayproto.ExitNoTray.
var ErrNoTray = errors.New("this cardagent-tray was built without the tray icon (it needs a cgo build with libayatana-appindicator3 on Linux, and not the notray tag)")

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
	r, w, err := trayproto.OpenChannel()
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
		exe, exeErr = trayproto.FindProgram(trayproto.AgentProgram)
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
	// process instead of leaving it behind. What arrives before the UI
	// reads it waits in a bounded backlog.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fromAgent := newBacklog(maxBacklog)
	pumped := make(chan error, 1)
	go func() {
		_, err := io.Copy(fromAgent, r)
		fromAgent.closeWrite(err) // nil: EOF, as the agent's end closed
		pumped <- err
		cancel()
	}()
	err = opts.RunUI(ctx, func(ui UI, clicks <-chan Click) error {
		app := &App{
			Log:         log,
			UI:          ui,
			Tracker:     tracker,
			DebugState:  opts.DebugState,
			Diagnostics: diagnostics,
		}
		return app.Run(ctx, fromAgent, w, clicks)
	})
	select {
	case perr := <-pumped:
		if errors.Is(perr, errBacklog) {
			return perr
		}
	default:
	}
	return err
}

// doctor runs `exe doctor` and returns its report (its exit status says
// whether anything blocks sign-in; the report is wanted either way).
func doctor(exe string) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		cmd := exec.CommandContext(ctx, exe, "doctor")
		cmd.Env = append(os.Environ(), trayproto.EnvChannel+"=") // never hand the channel on
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

// maxBacklog bounds what the agent may send before the UI reads it: the
// status messages of thousands of card events. A tray whose icon never
// appears exits when it is reached instead of growing.
const maxBacklog = 4 << 20

var errBacklog = errors.New("the tray's UI did not start: too much unread from the agent")

// backlog is a pipe with a bounded buffer: Write never waits for Read.
type backlog struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    bytes.Buffer
	max    int
	err    error // the writer's end: io.EOF or why it failed
	closed bool  // the reader's end
}

func newBacklog(max int) *backlog {
	b := &backlog{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *backlog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, io.ErrClosedPipe
	case b.buf.Len()+len(p) > b.max:
		return 0, errBacklog
	}
	b.buf.Write(p)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *backlog) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.buf.Len() == 0 && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	switch {
	case b.closed:
		return 0, os.ErrClosed
	case b.buf.Len() > 0:
		return b.buf.Read(p)
	}
	return 0, b.err
}

// closeWrite ends the stream: readers get what is buffered, then err
// (io.EOF when err is nil).
func (b *backlog) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	b.mu.Lock()
	b.err = err
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Close is the reader's: writes fail from then on.
func (b *backlog) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}
