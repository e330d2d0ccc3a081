//go:build !windows

package tray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRunProcessWithoutUI: a tray program without the icon answers
// ErrNoTray and closes its channel at once, so its agent sees it go.
func TestRunProcessWithoutUI(t *testing.T) {
	for _, tc := range []struct {
		name  string
		runUI RunUI
	}{
		{"no UI", nil},
		{"stub UI", func(context.Context, func(UI, <-chan Click) error) error { return ErrNoTray }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toTrayR, toTrayW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer toTrayW.Close()
			fromTrayR, fromTrayW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer fromTrayR.Close()
			// The tray's ends, as descriptors it owns (as a child's inherited ones).
			r, err := syscall.Dup(int(toTrayR.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			w, err := syscall.Dup(int(fromTrayW.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			toTrayR.Close()
			fromTrayW.Close()
			t.Setenv(EnvChannel, fmt.Sprintf("%d,%d", r, w))

			if err := RunProcess(context.Background(), ProcessOptions{RunUI: tc.runUI}); !errors.Is(err, ErrNoTray) {
				t.Errorf("RunProcess: %v, want ErrNoTray", err)
			}
			fromTrayR.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := fromTrayR.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("the tray's channel is still open: read %d, %v", n, err)
			}
		})
	}
}
