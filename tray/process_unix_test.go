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

	"github.com/cardagent/cardagent/tray/trayproto"
)

// agentChannel makes the channel an agent passes its tray, names the tray's
// ends in trayproto.EnvChannel (as descriptors it owns, as a child's
// inherited ones) and returns the agent's ends, closed when the test ends.
func agentChannel(t *testing.T) (toTray, fromTray *os.File) {
	t.Helper()
	toTrayR, toTrayW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromTrayR, fromTrayW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toTrayW.Close(); fromTrayR.Close() })
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
	t.Setenv(trayproto.EnvChannel, fmt.Sprintf("%d,%d", r, w))
	return toTrayW, fromTrayR
}

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
			_, fromTrayR := agentChannel(t)

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

// TestRunProcessAgentGoneBeforeIcon: when the icon never appears (RunUI
// never calls run, as systray without a notification area), the agent
// going away still ends the tray process, after having sent messages
// nobody read; and an agent that sends more than the backlog holds ends it
// with an error instead of growing it.
func TestRunProcessAgentGoneBeforeIcon(t *testing.T) {
	for _, tc := range []struct {
		name    string
		send    int // bytes the agent sends before it goes
		wantErr error
	}{
		{"nothing sent", 0, nil},
		{"statuses sent", 64 << 10, nil},
		{"more than the backlog", maxBacklog + 1<<20, errBacklog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toTrayW, _ := agentChannel(t)

			waiting := make(chan struct{})
			neverReady := func(ctx context.Context, _ func(UI, <-chan Click) error) error {
				close(waiting)
				<-ctx.Done()
				return nil
			}
			done := make(chan error, 1)
			go func() {
				done <- RunProcess(context.Background(), ProcessOptions{RunUI: neverReady, StatePath: t.TempDir() + "/state.json", Executable: "/nonexistent"})
			}()
			<-waiting
			// The agent: status lines, then it goes (its end closes).
			go func() {
				line := []byte(`{"type":"status","status":{"service":"up","readers":[]}}` + "\n")
				for sent := 0; sent < tc.send; sent += len(line) {
					if _, err := toTrayW.Write(line); err != nil {
						break
					}
				}
				if tc.wantErr == nil {
					time.Sleep(100 * time.Millisecond)
				}
				toTrayW.Close()
			}()
			if tc.wantErr == nil {
				select {
				case err := <-done:
					t.Fatalf("RunProcess returned with the agent still there: %v", err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("RunProcess: %v, want %v", err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the tray process did not end when its agent went away before the icon appeared")
			}
		})
	}
}
