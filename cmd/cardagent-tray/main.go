// Command cardagent-tray is cardagent's notification-area icon. The agent,
// `cardagent run`, starts it in a desktop session with a private channel
// (two inherited pipes), restarts it if it dies and ends it when it ends;
// it is not started by hand. See docs/tray.md.
//
// It is a program of its own so that the agent never links the GUI
// library (github.com/getlantern/systray: GTK 3 and libayatana-appindicator3
// on Linux): the agent runs where GTK is not installed and starts faster,
// and the process serving the sign-in API has no GUI toolkit in it. On
// Windows it is built as a GUI-subsystem program (-ldflags -H=windowsgui),
// so that no console window opens.
//
// Exit status: 0 when the agent or the user ended it, 1 on an error (no
// channel: not started by the agent), 2 for a bad command line, 5
// (trayproto.ExitNoTray) when built without the icon (no cgo, or the
// notray tag).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cardagent/cardagent/agent/logfile"
	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/trayproto"
	"github.com/cardagent/cardagent/tray/trayui"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr, trayui.Run)
	stop()
	os.Exit(code)
}

// run is the program without its process: it runs the tray with runUI on
// the calling goroutine (the main one) and returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer, runUI tray.RunUI) int {
	fs := flag.NewFlagSet(trayproto.TrayProgram, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cardagent-tray [--log-level LEVEL]\n\n"+
			"The cardagent tray icon. `cardagent run` starts it in a desktop session; it is not started by hand.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cardagent-tray: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := logfile.ConsoleLogger(stderr, "console", *level)
	if err != nil {
		fmt.Fprintln(stderr, "cardagent-tray:", err)
		return exitUsage
	}
	defer log.Sync()
	err = tray.RunProcess(ctx, tray.ProcessOptions{
		Log:        log,
		RunUI:      runUI,
		DebugState: os.Getenv(tray.EnvDebugState),
	})
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, tray.ErrNoTray):
		fmt.Fprintln(stderr, "cardagent-tray:", err)
		return trayproto.ExitNoTray
	}
	fmt.Fprintln(stderr, "cardagent-tray:", err)
	return exitFailure
}
