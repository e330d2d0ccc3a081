//go:build linux

package faults

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
)

// pinentryRecord is the part of the scripted pinentry's record we use.
type pinentryRecord struct {
	PID    int    `json:"pid"`
	Action string `json:"action"`
}

// waitPrompt waits until the scripted pinentry has recorded a GETPIN (the
// prompt is on screen) and returns its process id.
func waitPrompt(t testing.TB, record string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if f, err := os.Open(record); err == nil {
			sc := bufio.NewScanner(f)
			var r pinentryRecord
			for sc.Scan() {
				_ = json.Unmarshal(sc.Bytes(), &r)
			}
			f.Close()
			if r.PID != 0 {
				return r.PID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PIN prompt within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExited waits until process pid is gone (killed and reaped).
func waitExited(t testing.TB, pid int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("pinentry %d still running %v later", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// promptTimeout is the prompt timeout of the pinentry tests.
const promptTimeout = 2 * time.Second

// TestPromptFaults: the PIN prompt (the scripted pinentry, a real process
// speaking Assuan) fails or the page goes away while it is open. The client
// gets a typed error within the bound, the pinentry process is gone, no card
// operation follows the prompt, no PIN try is spent, and the agent serves the
// next sign-in.
func TestPromptFaults(t *testing.T) {
	bin := build(t, "./testdata/pinentry/scripted")
	tests := []struct {
		name  string
		args  []string // scripted pinentry flags (-record is added)
		path  string   // instead of the scripted pinentry
		leave bool     // the client disconnects once the prompt is shown
		code  string
		bound time.Duration
		shown bool // the prompt reaches GETPIN
	}{
		{name: "browser leaves while the prompt is open", args: []string{"-action", "hang"}, leave: true, bound: 3 * time.Second, shown: true},
		{name: "pinentry hangs", args: []string{"-action", "hang"}, code: "timeout", bound: promptTimeout + 3*time.Second, shown: true},
		{name: "pinentry crashes", args: []string{"-action", "crash"}, code: "prompt_unavailable", bound: 3 * time.Second, shown: true},
		{name: "pinentry answers garbage", args: []string{"-action", "garbage"}, code: "prompt_unavailable", bound: 3 * time.Second, shown: true},
		{name: "pinentry exits before its greeting", args: []string{"-action", "no-greeting"}, code: "prompt_unavailable", bound: 3 * time.Second},
		{name: "pinentry not installed", path: "/nonexistent/pinentry", code: "prompt_unavailable", bound: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			e := newCardEnv(t)
			e.insert(t)
			record := filepath.Join(t.TempDir(), "record")
			pe := &prompt.Pinentry{Path: bin, Args: append([]string{"-record", record}, tt.args...)}
			if tt.path != "" {
				pe = &prompt.Pinentry{Path: tt.path}
			}
			sw := prompttest.NewSwitch(pe)
			a := startAgent(t, sw, agentOpts{PromptTimeout: promptTimeout})
			a.waitCard(t, wire.CardReady, 10*time.Second)
			other := dial(t, a.port) // another page, connected throughout
			c := dial(t, a.port)
			e.clearSent()

			c.authenticate(t, 1)
			start := time.Now()
			pid := 0
			if tt.shown {
				pid = waitPrompt(t, record, 10*time.Second)
				start = time.Now()
			}
			n0, _ := e.sentCount()
			if tt.leave {
				c.close()
			} else {
				m := c.reply(t, 1, tt.bound+10*time.Second)
				took := time.Since(start)
				if errCode(m) != tt.code {
					t.Errorf("reply %v, want %s", m, tt.code)
				}
				if took > tt.bound {
					t.Errorf("%s after %v, want within %v", tt.code, took, tt.bound)
				}
				t.Logf("%s %v after the prompt opened", errCode(m), took.Round(time.Millisecond))
				if !tt.shown {
					n0, _ = e.sentCount() // the PIN-tries check went before the prompt
				}
			}
			if pid != 0 {
				waitExited(t, pid, tt.bound)
				t.Logf("pinentry process gone %v after the prompt opened", time.Since(start).Round(time.Millisecond))
			}
			// Nothing reaches the card after the prompt; give a stray
			// operation time to show itself.
			time.Sleep(300 * time.Millisecond)
			if n, v := e.sentCount(); n != n0 || v != 0 {
				t.Errorf("%d APDUs (%d VERIFY with a PIN) sent after the prompt failed", n-n0, v)
			}
			if got := e.card.PINTries(); got != 3 {
				t.Errorf("card has %d PIN tries left, want 3", got)
			}
			if n := e.card.WriteCount(); n != 0 {
				t.Errorf("%d write commands reached the card", n)
			}
			// The agent serves the next sign-in (the other page).
			sw.Set(&prompt.Pinentry{Path: bin, Args: []string{"-pin", markerPIN}})
			if card, svc := other.status(t, "st"); card != wire.CardReady || svc != "up" {
				t.Errorf("status: card %q, service %q", card, svc)
			}
			other.signIn(t, 2)
		})
	}
}
