//go:build linux

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// boundResume bounds how long after SIGCONT the agent has caught up: a
// request sent while it was stopped is answered and the card events that
// happened meanwhile are reported.
const boundResume = 2 * time.Second

// TestStopContinue runs `cardagent run` (built with go build, a config
// file, the scripted pinentry, --log-dir none) and stops it with SIGSTOP as
// a laptop's sleep does, while the card is pulled, while it is inserted, and
// while the PIN prompt is being answered. After SIGCONT the agent catches up
// within boundResume: requests sent meanwhile are answered, the events that
// happened are reported, status matches the reader, and sign-in works; at
// the end it stops cleanly on SIGTERM.
func TestStopContinue(t *testing.T) {
	noLeaks(t)
	bin := build(t, "./cmd/cardagent")
	pinentry := build(t, "./testdata/pinentry/scripted")
	e := newCardEnv(t)
	e.insert(t)

	dir := t.TempDir()
	// Private ports for the API and the Credential Management endpoint,
	// never the defaults a developer's own agent listens on.
	ports := pcsctest.FreePorts(t, 2)
	port := ports[0]
	cfg := filepath.Join(dir, "config.json")
	conf := fmt.Sprintf(`{"listen": {"port": %d, "port_range": 1}, "credential_management": {"ports": [%d]}, "allowed_origins": [%q], "prompt": {"timeout_seconds": 30}}`, port, ports[1], origin)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "record")
	cmd := exec.Command(bin, "run", "--config", cfg, "--pinentry", pinentry, "--log-dir", "none", "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "SCRIPTED_PINENTRY_PIN="+markerPIN, "SCRIPTED_PINENTRY_RECORD="+record, "SCRIPTED_PINENTRY_DELAY=300ms")
	var out pcsctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})

	var c *wsClient
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if c, err = tryDial(port); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent API not ready: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(c.close)
	waitStatus := func(want string, timeout time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for i := 0; ; i++ {
			if card, _ := c.status(t, fmt.Sprintf("wait-%d", i)); card == want {
				return time.Since(start)
			}
			if time.Since(start) > timeout {
				t.Fatalf("card state not %q within %v", want, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStatus("ready", 10*time.Second)
	c.signIn(t, "first")

	stop := func() {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// Wait until the kernel reports it stopped.
		for i := 0; i < 200 && !stopped(pid); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
	cont := func() time.Time {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	t.Run("card pulled while stopped", func(t *testing.T) {
		stop()
		c.send(t, map[string]any{"id": "asleep", "type": "status"})
		e.remove(t)
		time.Sleep(time.Second)
		t0 := cont()
		c.reply(t, "asleep", boundResume)
		c.event(t, "card_removed", boundResume)
		t.Logf("card_removed %v after SIGCONT", time.Since(t0).Round(time.Millisecond))
		if card, _ := c.status(t, "after"); card != "" {
			t.Errorf("status says %q, the reader is empty", card)
		}
	})

	t.Run("card inserted while stopped", func(t *testing.T) {
		stop()
		e.insert(t)
		time.Sleep(500 * time.Millisecond)
		t0 := cont()
		c.event(t, "card_inserted", boundResume+time.Second) // the card is read after SIGCONT
		t.Logf("card_inserted %v after SIGCONT", time.Since(t0).Round(time.Millisecond))
		c.signIn(t, "after-insert")
	})

	t.Run("stopped while the PIN is typed", func(t *testing.T) {
		os.Remove(record)
		ch := c.authenticate(t, "asleep-auth")
		waitPrompt(t, record, 10*time.Second)
		stop() // the pinentry answers (after 300 ms) while the agent is stopped
		time.Sleep(2 * time.Second)
		t0 := cont()
		m := c.reply(t, "asleep-auth", boundResume+time.Second)
		t.Logf("reply %v after SIGCONT", time.Since(t0).Round(time.Millisecond))
		raw, _ := json.Marshal(m["token"])
		if m["token"] == nil {
			t.Fatalf("reply %v", m)
		}
		if err := verifyRaw(t, raw, ch); err != nil {
			t.Fatalf("token does not verify: %v", err)
		}
	})

	if got := e.card.PINTries(); got != 3 {
		t.Errorf("card has %d PIN tries left, want 3", got)
	}
	if n := e.card.WriteCount(); n != 0 {
		t.Errorf("%d write commands reached the card", n)
	}
	c.close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("cardagent run exited with %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cardagent run did not stop within 10 s of SIGTERM")
	}
	if logs := out.String(); strings.Contains(logs, markerPIN) {
		t.Error("the PIN is in the agent's log")
	}
}

// stopped reports whether process pid is in the stopped state.
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces, so look after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'T'
}
