//go:build !windows

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// A build without the icon exits with trayproto.ExitNoTray, which tells the
// agent's trayhost.TraySupervisor not to restart it.
func TestRunWithoutTheIcon(t *testing.T) {
	var fds [2]int
	for i := range fds {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		f := r
		if i == 1 {
			f = w
		}
		if fds[i], err = syscall.Dup(int(f.Fd())); err != nil { // the tray closes its own copies
			t.Fatal(err)
		}
		r.Close()
		w.Close()
	}
	t.Setenv(trayproto.EnvChannel, fmt.Sprintf("%d,%d", fds[0], fds[1]))
	stub := func(context.Context, func(tray.UI, <-chan tray.Click) error) error { return tray.ErrNoTray }
	var stderr strings.Builder
	if code := run(context.Background(), nil, &stderr, stub); code != trayproto.ExitNoTray || !strings.Contains(stderr.String(), "built without the tray icon") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
