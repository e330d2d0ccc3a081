// Package desktoplock locks the desktop session of the user running the agent.
//
// Lock runs IT's lock command when one is configured (session.lock_command),
// else the system's own lock: on Linux `loginctl lock-session` for the
// user's session, falling back to `xdg-screensaver lock`; on Windows
// LockWorkStation; on macOS `pmset displaysleepnow`. Each asks for the lock
// and returns; none waits for the screen to be locked.
//
// A test binary never runs the system's lock (it would lock the developer's
// desktop): Lock returns ErrSystemLockInTest there unless a command is set.
package desktoplock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ErrSystemLockInTest is returned by Lock in a test binary when no command
// is configured: tests must never lock the desktop they run on.
var ErrSystemLockInTest = errors.New("desktoplock: a test never runs the system's lock; configure a lock command")

// Locker locks the desktop session.
type Locker struct {
	// Command, when not empty, is run instead of the system's lock: the
	// program's absolute path, then its arguments (no shell). It must exit
	// with status 0 once the lock is asked for.
	Command []string
}

// ErrStillRunning is Lock's answer when IT's lock command had not returned
// when ctx ended. The command is left running, never killed: many screen
// lockers (slock, i3lock -n, xsecurelock, swaylock without -f) stay in the
// foreground while the screen is locked, and killing one would unlock it.
// It is reaped when it ends.
var ErrStillRunning = errors.New("desktoplock: the lock command is still running; it is left running, as a locker that holds the screen must be")

// Lock asks for the desktop session to be locked, within ctx. IT's command
// (Command) is never killed: see ErrStillRunning.
func (l Locker) Lock(ctx context.Context) error {
	if len(l.Command) > 0 {
		return runLocker(ctx, l.Command)
	}
	if testing.Testing() {
		return ErrSystemLockInTest
	}
	return lockSystem(ctx)
}

// Available says why Lock cannot work here (nil when it can): the
// configured command is not an executable file, or the system's lock
// program or call is missing. It runs nothing; `cardagent doctor` shows it.
func (l Locker) Available() error {
	if len(l.Command) > 0 {
		return executable(l.Command[0])
	}
	return systemAvailable()
}

// executable is nil when path is a regular file someone may execute.
func executable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("desktoplock: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("desktoplock: %s is not a file", path)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("desktoplock: %s is not executable", path)
	}
	return nil
}

// Method says how Lock locks, for the log.
func (l Locker) Method() string {
	if len(l.Command) > 0 {
		return "command " + strings.Join(l.Command, " ")
	}
	return systemMethod
}

// runLocker starts argv and waits for it until ctx ends; then it returns
// ErrStillRunning and leaves the command running (a goroutine reaps it).
func runLocker(ctx context.Context, argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{b: &out}, &limited{b: &out}
	// A locker that forks into the background (i3lock without -n) leaves
	// its child holding the output pipes: once the command itself exited,
	// its status decides.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if errors.Is(err, exec.ErrWaitDelay) {
			err = nil // exited with status 0; a child of its keeps the pipes
		}
		return commandError(argv[0], err, out.String())
	case <-ctx.Done():
		return ErrStillRunning
	}
}

// commandError is nil for a command that exited with status 0, else an
// error naming it with the start of its output.
func commandError(name string, err error, output string) error {
	if err == nil {
		return nil
	}
	if msg := strings.TrimSpace(output); msg != "" {
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// maxOutput bounds what a failed command's output adds to its error.
const maxOutput = 512

// run runs argv and returns an error naming it, with the start of its
// output, unless it exits with status 0.
func run(ctx context.Context, argv []string) error {
	_, err := output(ctx, argv)
	return err
}

func output(ctx context.Context, argv []string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{b: &out}, &limited{b: &out}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return "", commandError(argv[0], err, out.String())
	}
	return out.String(), nil
}

// limited keeps the first maxOutput bytes written to it.
type limited struct{ b *bytes.Buffer }

func (w *limited) Write(p []byte) (int, error) {
	if room := maxOutput - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
