package trayhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// Defaults of TraySupervisor.
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultStableAfter = time.Minute
	// stopGrace is how long a tray has to exit after its channel closes.
	stopGrace = 3 * time.Second
)

// exitLoaderFailed is the exit status of the Linux dynamic loader when a
// program's shared libraries are missing (cardagent-tray installed without
// libayatana-appindicator3 or GTK, which the packages only recommend).
const exitLoaderFailed = 127

// TraySupervisor runs the tray program (cardagent-tray) for the agent: it
// starts it when a desktop session is present, serves its channel (Host),
// restarts it with a growing delay when it dies, and stops it when ctx
// ends. Without a desktop it logs once why there is no tray and waits for
// ctx: the agent keeps serving sign-ins, and PIN prompts use pinentry. The
// same happens, with its own reason, when cardagent-tray is not installed
// (a server, or a package installed without it) or cannot run here (built
// without the icon, or its GUI libraries are missing): the tray is
// optional.
//
// A tray that keeps failing (a display that went away, a broken desktop) is
// restarted after 1 s, 2 s, 4 s, ... up to MaxBackoff: it never busy-loops.
// The first failure is logged as a warning with the end of the tray's error
// output; repeats are logged at debug level.
type TraySupervisor struct {
	Log *zap.Logger
	// Host serves each tray's channel.
	Host *Host
	// Command builds the tray process; by default cardagent-tray found by
	// trayproto.FindProgram (next to the agent, else on PATH). Its Env, when nil, is
	// the agent's environment.
	Command func() *exec.Cmd
	// Desktop reports whether a desktop session is present and why not;
	// by default prompt.Desktop (DISPLAY/WAYLAND_DISPLAY on Linux, always
	// on Windows and macOS).
	Desktop func() (bool, string)
	// MinBackoff, MaxBackoff and StableAfter shape restarts: the delay
	// doubles from MinBackoff to MaxBackoff while the tray keeps dying, and
	// starts again from MinBackoff once one ran for StableAfter.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// OnQuit is called when the user chose Quit in the tray; the tray is
	// then not restarted. nil: Quit only ends the tray.
	OnQuit func()

	mu     sync.Mutex
	starts int
}

// Starts is how many tray processes were started (for tests and diagnostics).
func (s *TraySupervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Serve runs until ctx ends, then stops the tray; it returns nil. It never
// returns an error for a tray that cannot run: the tray is optional.
func (s *TraySupervisor) Serve(ctx context.Context) error {
	log := s.Log
	if log == nil {
		log = zap.NewNop()
	}
	desktop := s.Desktop
	if desktop == nil {
		desktop = func() (bool, string) { return prompt.Desktop(nil) }
	}
	if ok, why := desktop(); !ok {
		log.Info("no tray icon: " + why + "; the agent serves sign-ins without it, and PIN prompts use pinentry")
		<-ctx.Done()
		return nil
	}
	command := s.Command
	if command == nil {
		exe, err := trayproto.FindProgram(trayproto.TrayProgram)
		if err != nil {
			log.Info("no tray icon: " + err.Error() + "; the agent serves sign-ins without it")
			<-ctx.Done()
			return nil
		}
		command = func() *exec.Cmd { return exec.Command(exe) }
	}
	minB, maxB, stable := s.MinBackoff, s.MaxBackoff, s.StableAfter
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB < minB {
		maxB = max(DefaultMaxBackoff, minB)
	}
	if stable <= 0 {
		stable = DefaultStableAfter
	}

	backoff := minB
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		quit, err := s.runOnce(ctx, log, command())
		if ctx.Err() != nil {
			break
		}
		if cannotRun(err) {
			log.Info("no tray icon: the tray program cannot run here; the agent serves sign-ins without it", zap.Error(err))
			<-ctx.Done()
			break
		}
		if quit {
			log.Info("tray closed by the user (Quit)")
			if s.OnQuit != nil {
				s.OnQuit()
			}
			<-ctx.Done()
			break
		}
		if time.Since(start) >= stable {
			backoff, failures = minB, 0
		}
		failures++
		if failures == 1 {
			log.Warn("the tray icon stopped; restarting it", zap.Error(err), zap.Duration("in", backoff))
		} else {
			log.Debug("the tray icon stopped again", zap.Error(err), zap.Int("failures", failures), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
	return nil
}

// cannotRun tells a tray that will never run from one that crashed: a
// build without the icon (trayproto.ExitNoTray), or, on Linux, its shared libraries
// missing (the dynamic loader's 127). Restarting those is pointless.
func cannotRun(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	code := ee.ExitCode()
	return code == trayproto.ExitNoTray || (code == exitLoaderFailed && runtime.GOOS != "windows")
}

// runOnce starts the tray process cmd and serves it until it or ctx ends.
func (s *TraySupervisor) runOnce(ctx context.Context, log *zap.Logger, cmd *exec.Cmd) (quit bool, err error) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	// Channel: agent -> tray (toTrayR in the child) and tray -> agent.
	toTrayR, toTrayW, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("tray channel: %w", err)
	}
	fromTrayR, fromTrayW, err := os.Pipe()
	if err != nil {
		toTrayR.Close()
		toTrayW.Close()
		return false, fmt.Errorf("tray channel: %w", err)
	}
	closeChild := func() {
		toTrayR.Close()
		fromTrayW.Close()
	}
	if err := trayproto.AttachChannel(cmd, toTrayR, fromTrayW); err != nil {
		closeChild()
		toTrayW.Close()
		fromTrayR.Close()
		return false, err
	}
	// The tray's error output (GTK warnings, its own log) goes to our log.
	tail := &lineTail{max: 8}
	cmd.Stderr = &lineLogger{log: log.Named("tray"), tail: tail}
	cmd.WaitDelay = stopGrace // a grandchild holding stderr cannot hold up Wait
	if err := cmd.Start(); err != nil {
		closeChild()
		toTrayW.Close()
		fromTrayR.Close()
		return false, fmt.Errorf("starting the tray: %w", err)
	}
	closeChild() // the child has its copies
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	pid := cmd.Process.Pid
	log.Debug("tray started", zap.Int("pid", pid))

	exited := make(chan error, 1)
	hctx, hcancel := context.WithCancel(ctx)
	var hostQuit bool
	var hostErr error
	hostDone := make(chan struct{})
	go func() {
		defer close(hostDone)
		hostQuit, hostErr = s.Host.Serve(hctx, fromTrayR, toTrayW)
	}()
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	select {
	case waitErr = <-exited:
		hcancel()
		<-hostDone
	case <-hostDone:
		// The tray closed the channel (or broke it): it should exit now.
		hcancel()
		waitErr = s.waitOrKill(cmd, exited, log)
	case <-ctx.Done():
		hcancel() // closes the channel: the tray exits on its own
		<-hostDone
		waitErr = s.waitOrKill(cmd, exited, log)
	}
	hcancel()
	log.Debug("tray exited", zap.Int("pid", pid), zap.NamedError("exit", waitErr))
	if hostQuit {
		return true, nil
	}
	switch {
	case waitErr != nil:
		err = fmt.Errorf("tray process: %w", waitErr)
	case hostErr != nil:
		err = fmt.Errorf("tray channel: %w", hostErr)
	default:
		err = errors.New("tray process exited")
	}
	if t := tail.String(); t != "" {
		err = fmt.Errorf("%w; its last output: %s", err, t)
	}
	return false, err
}

// waitOrKill waits stopGrace for the tray to exit, then kills it.
func (s *TraySupervisor) waitOrKill(cmd *exec.Cmd, exited <-chan error, log *zap.Logger) error {
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		log.Debug("tray did not exit; killing it", zap.Int("pid", cmd.Process.Pid))
		_ = cmd.Process.Kill()
		return <-exited
	}
}

// lineLogger logs what the tray writes to its error output, line by line,
// at debug level, and keeps the last lines for the warning when it dies.
type lineLogger struct {
	log  *zap.Logger
	tail *lineTail
	buf  []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(l.buf[:i]), "\r")
		l.buf = l.buf[i+1:]
		if line != "" {
			l.tail.add(line)
			l.log.Debug(line)
		}
	}
	if len(l.buf) > 64<<10 { // no newline in sight: flush it as a line
		l.tail.add(string(l.buf))
		l.log.Debug(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// lineTail keeps the last max lines of a stream.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > 300 {
		line = line[:300]
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}
