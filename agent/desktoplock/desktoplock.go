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

// Lock asks for the desktop session to be locked, within ctx.
func (l Locker) Lock(ctx context.Context) error {
	if len(l.Command) > 0 {
		return run(ctx, l.Command)
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
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			return "", fmt.Errorf("%s: %w: %s", argv[0], err, msg)
		}
		return "", fmt.Errorf("%s: %w", argv[0], err)
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
