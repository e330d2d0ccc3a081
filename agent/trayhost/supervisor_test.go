package trayhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/trayhost/trayhosttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// The test binary doubles as the tray process: envTestChild names how it
// behaves (fakeChild), envTestLog where it writes what it saw.
const (
	envTestChild = "CARDAGENT_TRAY_TEST_CHILD"
	envTestLog   = "CARDAGENT_TRAY_TEST_LOG"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envTestChild); mode != "" {
		os.Exit(fakeChild(mode))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

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
		fmt.Fprintln(os.Stderr, "cardagent-tray:", tray.ErrNoTray)
		return trayproto.ExitNoTray
	case "noload":
		fmt.Fprintln(os.Stderr, "cardagent-tray: error while loading shared libraries: libayatana-appindicator3.so.1: cannot open shared object file: No such file or directory")
		return exitLoaderFailed
	}
	r, w, err := trayproto.OpenChannel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	c := trayproto.NewConn(r, w)
	logLine("started")
	switch mode {
	case "hang":
		time.Sleep(time.Minute)
		return 0
	case "serve":
		for {
			m, err := c.Read()
			if err != nil {
				logLine("eof")
				return 0
			}
			if m.Type == trayproto.TypeStatus {
				logLine(fmt.Sprintf("status readers=%d event=%s", len(m.Status.Readers), m.Event))
			}
		}
	case "quit":
		if _, err := c.Read(); err != nil {
			return 5
		}
		if err := c.Write(trayproto.Message{Type: trayproto.TypeRequest, ID: 1, Action: trayproto.ActionQuit}); err != nil {
			return 6
		}
		for {
			m, err := c.Read()
			if err != nil {
				return 7
			}
			if m.Type == trayproto.TypeResult && m.ID == 1 && m.OK {
				logLine("quit acknowledged")
				return 0
			}
		}
	}
	return 9
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

func readLines(p string) []string {
	b, _ := os.ReadFile(p)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func serveInBackground(t *testing.T, s *TraySupervisor) (cancel func() time.Duration) {
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
	s := &TraySupervisor{Log: log, Host: &Host{Backend: trayhosttest.NewBackend()}, Command: childCommand(t, "serve", filepath.Join(t.TempDir(), "log"))}
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
	s := &TraySupervisor{
		Log: log, Host: &Host{Backend: trayhosttest.NewBackend()},
		Command:    childCommand(t, "crash", filepath.Join(t.TempDir(), "log")),
		Desktop:    func() (bool, string) { return true, "" },
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond, StableAfter: time.Minute,
	}
	stop := serveInBackground(t, s)
	trayhosttest.WaitFor(t, "4 starts", 20*time.Second, func() bool { return s.Starts() >= 4 })
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
	b := trayhosttest.NewBackend()
	s := &TraySupervisor{
		Log: zap.NewNop(), Host: &Host{Backend: b},
		Command: childCommand(t, "serve", logPath),
		Desktop: func() (bool, string) { return true, "" },
	}
	stop := serveInBackground(t, s)
	trayhosttest.WaitFor(t, "the first status", 10*time.Second, func() bool { return len(readLines(logPath)) >= 2 })
	b.Set(wire.Status{Service: wire.ServiceUp, Readers: []wire.ReaderStatus{{Name: "R0"}, {Name: "R1"}}}, wire.EventReaderAdded)
	trayhosttest.WaitFor(t, "the status after an event", 10*time.Second, func() bool {
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
	s := &TraySupervisor{
		Log: zap.NewNop(), Host: &Host{Backend: trayhosttest.NewBackend()},
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
	s := &TraySupervisor{
		Log: zap.NewNop(), Host: &Host{Backend: trayhosttest.NewBackend()},
		Command: childCommand(t, "hang", logPath),
		Desktop: func() (bool, string) { return true, "" },
	}
	stop := serveInBackground(t, s)
	trayhosttest.WaitFor(t, "the tray to start", 10*time.Second, func() bool { return len(readLines(logPath)) == 1 })
	if took := stop(); took > stopGrace+2*time.Second {
		t.Errorf("stopping a hung tray took %v", took)
	}
}

func TestSupervisorWithoutTheTrayProgram(t *testing.T) {
	// The test binary's directory has no cardagent-tray, nor has PATH.
	t.Setenv("PATH", t.TempDir())
	log, logs := observed()
	s := &TraySupervisor{Log: log, Host: &Host{Backend: trayhosttest.NewBackend()}, Desktop: func() (bool, string) { return true, "" }}
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
			s := &TraySupervisor{
				Log: log, Host: &Host{Backend: trayhosttest.NewBackend()},
				Command:    childCommand(t, tc.mode, filepath.Join(t.TempDir(), "log")),
				Desktop:    func() (bool, string) { return true, "" },
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
			}
			stop := serveInBackground(t, s)
			trayhosttest.WaitFor(t, "the tray to start", 10*time.Second, func() bool { return s.Starts() >= 1 })
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
