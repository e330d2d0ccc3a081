package agentsupervisor_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/agentsupervisor"
)

// The test binary doubles as the supervised child: SUPERVISE_CHILD says how
// it behaves.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISE_CHILD") {
	case "":
		goleak.VerifyTestMain(m)
		return
	case "crash":
		os.Exit(3)
	case "ok":
		os.Exit(0)
	case "crash-twice":
		// Counts its runs in a file: fails twice, then exits 0.
		f := os.Getenv("SUPERVISE_COUNT")
		b, _ := os.ReadFile(f)
		n, _ := strconv.Atoi(string(b))
		os.WriteFile(f, []byte(strconv.Itoa(n+1)), 0o600)
		if n < 2 {
			os.Exit(1)
		}
		os.Exit(0)
	case "serve":
		// Runs until interrupted, then exits cleanly, like `cardagent run`.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		os.WriteFile(os.Getenv("SUPERVISE_COUNT"), []byte("up"), 0o600)
		<-ctx.Done()
		os.WriteFile(os.Getenv("SUPERVISE_COUNT"), []byte("stopped"), 0o600)
		os.Exit(0)
	}
	os.Exit(99)
}

func child(t *testing.T, mode string) (agentsupervisor.Options, *observer.ObservedLogs, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	count := filepath.Join(t.TempDir(), "count")
	core, logs := observer.New(zap.DebugLevel)
	return agentsupervisor.Options{
		Path:        exe,
		Args:        []string{"-test.run=^$"},
		Env:         append(os.Environ(), "SUPERVISE_CHILD="+mode, "SUPERVISE_COUNT="+count),
		MinDelay:    10 * time.Millisecond,
		MaxDelay:    80 * time.Millisecond,
		StableAfter: time.Hour,
		StopTimeout: 2 * time.Second,
		Log:         zap.New(core),
	}, logs, count
}

func TestCrashingChildIsRestartedWithBackoff(t *testing.T) {
	o, logs, _ := child(t, "crash")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := agentsupervisor.Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	died := logs.FilterMessage("agent died: restarting").All()
	if len(died) < 5 {
		t.Fatalf("only %d restarts in 1.5 s", len(died))
	}
	var delays []time.Duration
	for _, e := range died {
		delays = append(delays, e.ContextMap()["delay"].(time.Duration))
		if s := e.ContextMap()["status"].(string); !strings.Contains(s, "exit status 3") {
			t.Errorf("status %q", s)
		}
	}
	want := []time.Duration{10, 20, 40, 80, 80}
	for i, w := range want {
		if delays[i] != w*time.Millisecond {
			t.Errorf("delays %v, want %v ms then 80 ms", delays, want)
			break
		}
	}
	if got := logs.FilterMessage("agent started").Len(); got != len(died)+1 && got != len(died) {
		t.Errorf("%d starts for %d deaths", got, len(died))
	}
}

func TestBackoffResetsAfterStableRun(t *testing.T) {
	o, logs, _ := child(t, "crash")
	o.StableAfter = time.Nanosecond // every run counts as healthy
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	agentsupervisor.Run(ctx, o)
	for _, e := range logs.FilterMessage("agent died: restarting").All() {
		if d := e.ContextMap()["delay"].(time.Duration); d != o.MinDelay {
			t.Fatalf("delay %v after a stable run, want %v", d, o.MinDelay)
		}
	}
}

func TestCleanExitStops(t *testing.T) {
	o, logs, count := child(t, "crash-twice")
	if err := agentsupervisor.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(count); string(b) != "3" {
		t.Errorf("child ran %s times, want 3 (two failures, then a clean exit)", b)
	}
	if logs.FilterMessage("agent exited normally: not restarting").Len() != 1 {
		t.Error("no clean-exit message")
	}
	o, _, _ = child(t, "ok")
	start := time.Now()
	if err := agentsupervisor.Run(context.Background(), o); err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("ok child: %v after %v", err, time.Since(start))
	}
}

func TestStopInterruptsChild(t *testing.T) {
	o, _, count := child(t, "serve")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentsupervisor.Run(ctx, o) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, _ := os.ReadFile(count); string(b) == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("supervisor did not stop")
	}
	if b, _ := os.ReadFile(count); string(b) != "stopped" {
		t.Errorf("child was not stopped gracefully: %q", b)
	}
}

func TestMissingProgram(t *testing.T) {
	err := agentsupervisor.Run(context.Background(), agentsupervisor.Options{Path: filepath.Join(t.TempDir(), "nope")})
	if err == nil || !strings.Contains(err.Error(), "starting the agent") {
		t.Fatalf("err %v", err)
	}
}

func TestSessionLock(t *testing.T) {
	release, err := agentsupervisor.SessionLock()
	if err != nil {
		t.Fatal(err)
	}
	release()
}
