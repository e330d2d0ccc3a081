// Package agentsupervisor keeps the agent running where no service manager
// does.
//
// On Windows the HKLM Run key starts `cardagentw.exe supervise` in the
// user's session at every sign-in. Run starts the agent as a child process
// and, whenever the child dies, starts it again after a delay that doubles
// with each quick failure (1 s, 2 s, 4 s, ... up to a minute) and resets once a
// child has run for a while. A child that exits with status 0 asked to stop
// (the tray's Quit): the supervisor stops too. On Linux and macOS systemd
// (Restart=on-failure) and launchd (KeepAlive) do the same job.
package agentsupervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"go.uber.org/zap"
)

// Options describe the child and the restart policy.
type Options struct {
	// Path and Args are the child's program and arguments (Args without
	// the program name).
	Path string
	Args []string
	// Env is the child's environment (nil: the supervisor's).
	Env []string
	// Stdout and Stderr receive the child's output (nil: discarded).
	Stdout, Stderr io.Writer

	// MinDelay is the first restart delay (default 1 s); each quick failure
	// doubles it up to MaxDelay (default 1 min).
	MinDelay, MaxDelay time.Duration
	// StableAfter: a child that ran at least this long (default 1 min) was
	// healthy, so the next restart waits only MinDelay.
	StableAfter time.Duration
	// StopTimeout is how long a child gets to exit after the interrupt
	// signal when the supervisor stops, before it is killed (default 5 s).
	StopTimeout time.Duration

	Log *zap.Logger
}

func (o *Options) defaults() {
	if o.MinDelay <= 0 {
		o.MinDelay = time.Second
	}
	if o.MaxDelay < o.MinDelay {
		o.MaxDelay = max(time.Minute, o.MinDelay)
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
}

// Run starts the child and restarts it whenever it fails, until ctx ends
// (the child is stopped and Run returns nil) or the child exits with status
// 0 (Run returns nil). It returns an error only when the child cannot be
// started at all (a missing program).
func Run(ctx context.Context, o Options) error {
	o.defaults()
	delay := o.MinDelay
	for restarts := 0; ; restarts++ {
		started := time.Now()
		err := runOnce(ctx, o)
		ran := time.Since(started)
		if ctx.Err() != nil {
			o.Log.Info("supervisor stopping", zap.Int("restarts", restarts))
			return nil
		}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			o.Log.Info("agent exited normally: not restarting", zap.Duration("ran", ran))
			return nil
		case !errors.As(err, &exitErr):
			return fmt.Errorf("starting the agent: %w", err)
		}
		if ran >= o.StableAfter {
			delay = o.MinDelay
		}
		o.Log.Warn("agent died: restarting", zap.String("status", exitErr.ProcessState.String()),
			zap.Duration("ran", ran), zap.Duration("delay", delay), zap.Int("restarts", restarts+1))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			o.Log.Info("supervisor stopping", zap.Int("restarts", restarts))
			return nil
		case <-t.C:
		}
		delay = min(2*delay, o.MaxDelay)
	}
}

func runOnce(ctx context.Context, o Options) error {
	cmd := exec.CommandContext(ctx, o.Path, o.Args...)
	cmd.Env = o.Env
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	// Ask the child to stop (SIGINT, as Ctrl-C would); Windows has no such
	// signal for another process, so there the child is killed.
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = o.StopTimeout
	if err := cmd.Start(); err != nil {
		return err
	}
	o.Log.Info("agent started", zap.Int("pid", cmd.Process.Pid))
	return cmd.Wait()
}
