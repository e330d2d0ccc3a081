package tray

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
)

const envTestLog = "CARDAGENT_TRAY_TEST_LOG"

// fakeChild is the test binary acting as a tray process.
func fakeChild(mode string) int {
	logLine := func(s string) {
		if p := os.Getenv(envTestLog); p != "" {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				fmt.Fprintln(f, s)
				f.Close()
			}
		}
	}
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "Gtk-WARNING: cannot open display: :99")
		return 3
	case "notray":
		fmt.Fprintln(os.Stderr, "cardagent-tray:", ErrNoTray)
		return ExitNoTray
	case "noload":
		fmt.Fprintln(os.Stderr, "cardagent-tray: error while loading shared libraries: libayatana-appindicator3.so.1: cannot open shared object file: No such file or directory")
		return exitLoaderFailed
	case "gui":
		return guiChild()
	case "agent":
		return agentChild()
	}
	r, w, err := OpenChannel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	c := newConn(r, w)
	logLine("started")
	switch mode {
	case "hang":
		time.Sleep(time.Minute)
		return 0
	case "serve":
		for {
			m, err := c.read()
			if err != nil {
				logLine("eof")
				return 0
			}
			if m.Type == TypeStatus {
				logLine(fmt.Sprintf("status readers=%d event=%s", len(m.Status.Readers), m.Event))
			}
		}
	case "quit":
		if _, err := c.read(); err != nil {
			return 5
		}
		if err := c.write(Message{Type: TypeRequest, ID: 1, Action: ActionQuit}); err != nil {
			return 6
		}
		for {
			m, err := c.read()
			if err != nil {
				return 7
			}
			if m.Type == TypeResult && m.ID == 1 && m.OK {
				logLine("quit acknowledged")
				return 0
			}
		}
	}
	return 9
}

// fakeBackend is a Backend whose status and events the test sets.
type fakeBackend struct {
	mu     sync.Mutex
	status wire.Status
	subs   map[int]func(wire.Event)
	next   int
	// change and unblock are called by ChangePIN and UnblockPIN.
	change, unblock func(ctx context.Context, p prompt.Prompter) error
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{status: wire.Status{Service: wire.ServiceUp, ExpiryWarningDays: 90}, subs: map[int]func(wire.Event){}}
}

func (b *fakeBackend) Status() wire.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

func (b *fakeBackend) Subscribe(fn func(wire.Event)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

func (b *fakeBackend) set(st wire.Status, kind wire.EventKind) {
	b.mu.Lock()
	b.status = st
	fns := make([]func(wire.Event), 0, len(b.subs))
	for _, fn := range b.subs {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(wire.Event{Kind: kind})
	}
}

func (b *fakeBackend) ChangePIN(ctx context.Context, p prompt.Prompter) error {
	if b.change == nil {
		return nil
	}
	return b.change(ctx, p)
}

func (b *fakeBackend) UnblockPIN(ctx context.Context, p prompt.Prompter) error {
	if b.unblock == nil {
		return nil
	}
	return b.unblock(ctx, p)
}

// childCommand re-runs the test binary as a fake tray in mode.
func childCommand(t *testing.T, mode, logPath string) func() *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envTestChild+"="+mode, envTestLog+"="+logPath)
		return cmd
	}
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readLines(p string) []string {
	b, _ := os.ReadFile(p)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func serveInBackground(t *testing.T, s *Supervisor) (cancel func() time.Duration) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return func() time.Duration {
		start := time.Now()
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after cancel")
		}
		return time.Since(start)
	}
}

func TestSupervisorWithoutDesktop(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	log, logs := observed()
	s := &Supervisor{Log: log, Host: &Host{Backend: newFakeBackend()}, Command: childCommand(t, "serve", filepath.Join(t.TempDir(), "log"))}
	if ok, _ := prompt.Desktop(nil); ok && os.Getenv("DISPLAY") == "" {
		t.Skip("this OS always has a desktop session")
	}
	stop := serveInBackground(t, s)
	time.Sleep(300 * time.Millisecond)
	stop()
	if s.Starts() != 0 {
		t.Errorf("%d tray processes started without a display", s.Starts())
	}
	entries := logs.All()
	if len(entries) != 1 || !strings.Contains(entries[0].Message, "no tray icon") || !strings.Contains(entries[0].Message, "DISPLAY") {
		t.Errorf("want exactly one log line saying why there is no tray, got %d: %v", len(entries), entries)
	}
}

func TestSupervisorRestartsACrashingTrayWithBackoff(t *testing.T) {
	log, logs := observed()
	s := &Supervisor{
		Log: log, Host: &Host{Backend: newFakeBackend()},
		Command:    childCommand(t, "crash", filepath.Join(t.TempDir(), "log")),
		Desktop:    func() (bool, string) { return true, "" },
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond, StableAfter: time.Minute,
	}
	stop := serveInBackground(t, s)
	waitFor(t, "4 starts", 20*time.Second, func() bool { return s.Starts() >= 4 })
	start, n0 := time.Now(), s.Starts()
	time.Sleep(800 * time.Millisecond)
	rate := float64(s.Starts()-n0) / time.Since(start).Seconds()
	stop()
	// At the 160 ms cap, about 6 starts a second (plus the process's own
	// start time): a busy loop would be hundreds.
	if rate > 8 {
		t.Errorf("%.1f restarts per second: backoff not applied", rate)
	}
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings, want 1 (repeats at debug level): %v", len(warns), warns)
	}
	if msg := fmt.Sprint(warns[0].ContextMap()); !strings.Contains(msg, "cannot open display") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("warning does not carry the tray's last output and exit status: %s", msg)
	}
	if logs.FilterMessageSnippet("stopped again").Len() < 2 {
		t.Error("repeated failures not logged at debug level")
	}
}

func TestSupervisorServesStatusAndStops(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "log")
	b := newFakeBackend()
	s := &Supervisor{
		Log: zap.NewNop(), Host: &Host{Backend: b},
		Command: childCommand(t, "serve", logPath),
		Desktop: func() (bool, string) { return true, "" },
	}
	stop := serveInBackground(t, s)
	waitFor(t, "the first status", 10*time.Second, func() bool { return len(readLines(logPath)) >= 2 })
	b.set(wire.Status{Service: wire.ServiceUp, Readers: []wire.ReaderStatus{{Name: "R0"}, {Name: "R1"}}}, wire.EventReaderAdded)
	waitFor(t, "the status after an event", 10*time.Second, func() bool {
		lines := readLines(logPath)
		return lines[len(lines)-1] == "status readers=2 event=reader_added"
	})
	if took := stop(); took > 2*time.Second {
		t.Errorf("stopping took %v", took)
	}
	lines := readLines(logPath)
	if lines[0] != "started" || lines[1] != "status readers=0 event=" || lines[len(lines)-1] != "eof" {
		t.Errorf("child saw %q", lines)
	}
	if s.Starts() != 1 {
		t.Errorf("%d starts", s.Starts())
	}
}

func TestSupervisorQuit(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "log")
	quit := make(chan struct{})
	s := &Supervisor{
		Log: zap.NewNop(), Host: &Host{Backend: newFakeBackend()},
		Command:    childCommand(t, "quit", logPath),
		Desktop:    func() (bool, string) { return true, "" },
		MinBackoff: 10 * time.Millisecond,
		OnQuit:     func() { close(quit) },
	}
	stop := serveInBackground(t, s)
	select {
	case <-quit:
	case <-time.After(10 * time.Second):
		t.Fatal("OnQuit not called")
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	if s.Starts() != 1 {
		t.Errorf("%d starts: a tray the user quit was restarted", s.Starts())
	}
	if l := readLines(logPath); len(l) != 2 || l[1] != "quit acknowledged" {
		t.Errorf("child saw %q", l)
	}
}

func TestSupervisorKillsAHungTray(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "log")
	s := &Supervisor{
		Log: zap.NewNop(), Host: &Host{Backend: newFakeBackend()},
		Command: childCommand(t, "hang", logPath),
		Desktop: func() (bool, string) { return true, "" },
	}
	stop := serveInBackground(t, s)
	waitFor(t, "the tray to start", 10*time.Second, func() bool { return len(readLines(logPath)) == 1 })
	if took := stop(); took > stopGrace+2*time.Second {
		t.Errorf("stopping a hung tray took %v", took)
	}
}

func TestOpenChannelOutsideAgent(t *testing.T) {
	t.Setenv(EnvChannel, "")
	if _, _, err := OpenChannel(); err != ErrNoChannel {
		t.Errorf("err %v, want ErrNoChannel", err)
	}
	for _, v := range []string{"3", "a,b", "3,4,5"} {
		t.Setenv(EnvChannel, v)
		if _, _, err := OpenChannel(); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestSupervisorWithoutTheTrayProgram(t *testing.T) {
	// The test binary's directory has no cardagent-tray, nor has PATH.
	t.Setenv("PATH", t.TempDir())
	log, logs := observed()
	s := &Supervisor{Log: log, Host: &Host{Backend: newFakeBackend()}, Desktop: func() (bool, string) { return true, "" }}
	stop := serveInBackground(t, s)
	time.Sleep(300 * time.Millisecond)
	stop()
	if s.Starts() != 0 {
		t.Errorf("%d tray processes started", s.Starts())
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].Level != zapcore.InfoLevel || !strings.Contains(entries[0].Message, "no tray icon: cardagent-tray") ||
		!strings.Contains(entries[0].Message, "not installed") {
		t.Errorf("want exactly one info line saying cardagent-tray is not installed, got %d: %v", len(entries), entries)
	}
}

func TestSupervisorDoesNotRestartATrayThatCannotRun(t *testing.T) {
	for _, tc := range []struct{ mode, says string }{
		{"notray", "built without the tray icon"},
		{"noload", "libayatana-appindicator3.so.1"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			if tc.mode == "noload" && runtime.GOOS == "windows" {
				t.Skip("exit status 127 means nothing special on Windows")
			}
			log, logs := observed()
			s := &Supervisor{
				Log: log, Host: &Host{Backend: newFakeBackend()},
				Command:    childCommand(t, tc.mode, filepath.Join(t.TempDir(), "log")),
				Desktop:    func() (bool, string) { return true, "" },
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
			}
			stop := serveInBackground(t, s)
			waitFor(t, "the tray to start", 10*time.Second, func() bool { return s.Starts() >= 1 })
			time.Sleep(500 * time.Millisecond) // dozens of restarts if it were restarted
			stop()
			if s.Starts() != 1 {
				t.Errorf("started %d times", s.Starts())
			}
			if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
				t.Errorf("%d warnings", n)
			}
			infos := logs.FilterMessageSnippet("cannot run here").All()
			if len(infos) != 1 || infos[0].Level != zapcore.InfoLevel || !strings.Contains(fmt.Sprint(infos[0].ContextMap()), tc.says) {
				t.Errorf("want one info line with the tray's reason (%q): %v", tc.says, logs.All())
			}
		})
	}
}

func TestFindProgram(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses executable bits and symbolic links")
	}
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) string {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	agentNextTo := mk("usr/bin/cardagent", 0o755)
	trayNextTo := mk("usr/bin/cardagent-tray", 0o755)
	agentAlone := mk("opt/a/cardagent", 0o755)
	mk("opt/b/cardagent", 0o755)
	mk("opt/b/cardagent-tray", 0o644) // not executable
	agentNotExec := filepath.Join(root, "opt/b/cardagent")
	onPath := mk("path/cardagent-tray", 0o755)
	winTray := mk("win/cardagent-tray.exe", 0o755)
	winAgent := mk("win/cardagent.exe", 0o755)
	realDir := filepath.Dir(trayNextTo)
	link := filepath.Join(root, "links/cardagent")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(agentNextTo, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, self, path, goos string
		want                   string // "" for an error
	}{
		{"next to the agent, before PATH", agentNextTo, filepath.Join(root, "path"), "linux", trayNextTo},
		{"on PATH", agentAlone, filepath.Join(root, "path"), "linux", onPath},
		{"not installed", agentAlone, t.TempDir(), "linux", ""},
		{"not executable", agentNotExec, t.TempDir(), "linux", ""},
		{"next to the real file of a link", link, t.TempDir(), "darwin", filepath.Join(realDir, "cardagent-tray")},
		{"windows adds .exe", winAgent, t.TempDir(), "windows", winTray},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			got, err := findProgram(TrayProgram, tc.goos, func() (string, error) { return tc.self, nil }, exec.LookPath)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "cardagent-tray is not installed") || !strings.Contains(err.Error(), filepath.Dir(tc.self)) {
					t.Errorf("got %q, %v; want an error naming where it looked", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}
