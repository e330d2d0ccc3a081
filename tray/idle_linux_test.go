package tray

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/logfile"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/trayhost"
	"github.com/cardagent/cardagent/agent/trayhost/trayhosttest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// EnvIdleSeconds sets how long TestIdleWithoutTrayHost measures (default 3 s;
// the figure in the report is from 60 s).
const envIdleSeconds = "CARDAGENT_IDLE_SECONDS"

// agentChild is the test binary acting as the agent: the card service, the
// loopback API and the tray supervisor, as `cardagent run` wires them,
// logging JSON at info level to stderr, until SIGTERM.
func agentChild() int {
	log, err := logfile.ConsoleLogger(os.Stderr, "json", "info")
	if err != nil {
		return 10
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	svc := &agent.CardService{Log: log}
	srv, err := api.New(log.Named("api"), svc, nil, api.Options{Ports: []int{0}, AllowedOrigins: []string{e2eOrigin}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 11
	}
	exe, _ := os.Executable()
	sup := &trayhost.TraySupervisor{
		Log:  log.Named("tray"),
		Host: &trayhost.Host{Log: log.Named("tray"), Backend: svc},
		Command: func() *exec.Cmd {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), envTestChild+"=gui")
			return cmd
		},
	}
	var wg sync.WaitGroup
	for _, serve := range []func(context.Context) error{svc.Serve, srv.Serve, sup.Serve} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx); err != nil {
				log.Error("serve", zap.Error(err))
			}
		}()
	}
	wg.Wait()
	return 0
}

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the command: state(0) ... utime(11) stime(12).
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return u + st, nil
}

// TestIdleWithoutTrayHost runs the agent (card service, API, tray
// supervisor) with no tray host, headless and on a display without one,
// and measures its CPU use while nothing happens. It must log no warning
// or error, and stay near zero.
func TestIdleWithoutTrayHost(t *testing.T) {
	pcsctest.Require(t) // the agent child uses this private pcscd (PCSCLITE_CSOCK_NAME)
	secs := 3.0
	if v, err := strconv.ParseFloat(os.Getenv(envIdleSeconds), 64); err == nil && v > 0 {
		secs = v
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		display bool
	}{{"headless", false}, {"display without tray host", true}} {
		t.Run(tc.name, func(t *testing.T) {
			disp := ""
			if tc.display {
				disp = prompttest.StartXvfb(t, 150, 200, "640x480x24") // an X server with no tray host
			}
			dir := t.TempDir()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), envTestChild+"=agent", "DISPLAY="+disp, "WAYLAND_DISPLAY=",
				envTestLog+"="+filepath.Join(dir, "log"), "XDG_STATE_HOME="+dir, "HOME="+dir)
			var stderr bytes.Buffer
			var mu sync.Mutex
			cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return stderr.Write(p) })
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmd.WaitDelay = 5 * time.Second
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			stopped := false
			defer func() {
				if !stopped {
					_ = cmd.Process.Kill()
					<-exited
				}
			}()
			pids := []int{cmd.Process.Pid}
			if tc.display {
				pidFile := filepath.Join(dir, "log.pid")
				// The file may exist a moment before its number is written.
				var pid int
				trayhosttest.WaitFor(t, "the tray process", 15*time.Second, func() bool {
					b, err := os.ReadFile(pidFile)
					if err != nil {
						return false
					}
					pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
					return err == nil
				})
				pids = append(pids, pid)
			}
			time.Sleep(1500 * time.Millisecond) // settle
			before := make([]int64, len(pids))
			for i, p := range pids {
				if before[i], err = cpuTicks(p); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			time.Sleep(time.Duration(secs * float64(time.Second)))
			elapsed := time.Since(start).Seconds()
			var percents []float64
			for i, p := range pids {
				after, err := cpuTicks(p)
				if err != nil {
					t.Fatalf("process %d is gone: %v", p, err)
				}
				percents = append(percents, float64(after-before[i])/100/elapsed*100)
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				stopped = true
				if err != nil {
					t.Errorf("agent exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the agent did not stop on SIGTERM")
			}
			t.Logf("idle CPU over %.0f s: agent %.2f%% of a core", elapsed, percents[0])
			if len(percents) > 1 {
				t.Logf("idle CPU over %.0f s: tray (no tray host) %.2f%% of a core", elapsed, percents[1])
			}
			for i, p := range percents {
				if p > 2 { // -race makes everything slower; without it the figure is near 0
					t.Errorf("process %d used %.2f%% of a core while idle", pids[i], p)
				}
			}
			mu.Lock()
			logs := stderr.String()
			mu.Unlock()
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
					t.Errorf("agent logged: %s", line)
				}
			}
			if !tc.display && strings.Count(logs, "no tray icon") != 1 {
				t.Errorf("headless agent did not log once why there is no tray:\n%s", logs)
			}
		})
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
