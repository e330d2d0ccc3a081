//go:build linux

package faults

import (
	"slices"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// boundService bounds the reply after pcscd went away: the monitor's
// blocked SCardGetStatusChange returns at once when pcscd's socket closes.
const boundService = 5 * time.Second

// TestPCSCDKilled: pcscd dies during a sign-in, with the PIN prompt open or
// with the signature in flight. The client gets a typed error within
// boundService, the prompt is closed, nothing more is sent to the card, and
// once pcscd is back (and the card, which vpcd dropped, inserted again) the
// agent serves without a restart.
func TestPCSCDKilled(t *testing.T) {
	tests := []struct {
		name string
		// during starts the sign-in and returns once it is at the point
		// where pcscd is to be killed; after is called once it was killed.
		during func(t *testing.T, e *cardEnv, sw *prompttest.Switch, c *wsClient) (after func())
		// sentMore is whether APDUs may follow the kill point (none may).
		verifies int
	}{
		{
			name: "while the PIN prompt is open",
			during: func(t *testing.T, e *cardEnv, sw *prompttest.Switch, c *wsClient) func() {
				bp := newBlockingPrompt()
				sw.Set(bp)
				c.authenticate(t, 1)
				within(t, bp.shown, 10*time.Second, "prompt shown")
				return func() {
					select {
					case <-bp.closed:
					case <-time.After(boundService):
						t.Error("the prompt stayed open after pcscd died")
					}
				}
			},
			verifies: 0,
		},
		{
			name: "during the signature",
			during: func(t *testing.T, e *cardEnv, sw *prompttest.Switch, c *wsClient) func() {
				reached, hold := make(chan []byte, 1), make(chan struct{})
				e.inj.Arm(vcard.Unchained(vcard.INS(insGenAuth)), vcard.Action{Reached: reached, Hold: hold, Fault: vcard.Drop}, 1)
				c.authenticate(t, 1)
				select {
				case <-reached:
				case <-time.After(10 * time.Second):
					close(hold)
					t.Fatal("the signature never reached the card")
				}
				return func() { close(hold) }
			},
			verifies: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			e := newCardEnv(t)
			e.insert(t)
			sw := prompttest.NewSwitch(fixedPIN(markerPIN))
			a := startAgent(t, sw, agentOpts{})
			a.waitCard(t, wire.CardReady, 10*time.Second)
			c := dial(t, a.port)
			e.clearSent()

			after := tt.during(t, e, sw, c)
			n0, _ := e.sentCount()
			start := time.Now()
			e.p.Kill()
			after()
			m := c.reply(t, 1, boundService+10*time.Second)
			took := time.Since(start)
			if code := errCode(m); !slices.Contains([]string{"card_removed", "service_unavailable"}, code) {
				t.Errorf("reply %v, want card_removed or service_unavailable", m)
			}
			if took > boundService {
				t.Errorf("reply after %v, want within %v", took, boundService)
			}
			t.Logf("%s %v after pcscd was killed", errCode(m), took.Round(time.Millisecond))
			if n, v := e.sentCount(); n != n0 || v != tt.verifies {
				t.Errorf("%d APDUs sent after the kill point, %d VERIFY with the PIN (want 0 and %d)", n-n0, v, tt.verifies)
			}
			checkServiceRecovers(t, e, a, sw, c)
		})
	}
}

// TestReaderGone: the reader disappears (vpcd cannot remove a reader, so
// pcscd is stopped: every reader goes) and comes back. Events say so in
// order, status and sign-in give typed errors at once, and the agent serves
// again when pcscd is back.
func TestReaderGone(t *testing.T) {
	noLeaks(t)
	e := newCardEnv(t)
	e.insert(t)
	sw := prompttest.NewSwitch(fixedPIN(markerPIN))
	a := startAgent(t, sw, agentOpts{})
	a.waitCard(t, wire.CardReady, 10*time.Second)
	c := dial(t, a.port)
	// A reply proves the connection is subscribed to events: the handshake
	// alone returns before the agent's side has subscribed.
	c.status(t, "st-before")
	before := len(c.eventKinds())
	e.p.Kill()
	deadline := time.Now().Add(boundService)
	for !slices.Contains(c.eventKinds()[before:], "service_down") {
		if time.Now().After(deadline) {
			t.Fatalf("no service_down event within %v of pcscd's end; events %q; the agent's log:\n%s", boundService, c.eventKinds()[before:], a.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := c.eventKinds()[before:]
	t.Logf("events with pcscd stopped: %q", got)
	if i, j := slices.Index(got, "card_removed"), slices.Index(got, "service_down"); i < 0 || i > j {
		t.Errorf("events %q: want card_removed before service_down", got)
	}
	// Their times are in their order: card_removed is not later than the
	// reader_removed and service_down that follow it.
	times := c.eventTimes(t)[before:]
	for i := 1; i < len(got) && i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Errorf("event %s at %s is earlier than the %s before it at %s", got[i], times[i].Format(time.RFC3339Nano), got[i-1], times[i-1].Format(time.RFC3339Nano))
		}
	}
	checkServiceRecovers(t, e, a, sw, c)
}

// checkServiceRecovers is the second half of the pcscd tests: with pcscd
// gone the agent answers at once with service_unavailable; once pcscd is back
// and the card inserted, status is right and a sign-in works. No PIN try was
// spent and nothing was written.
func checkServiceRecovers(t *testing.T, e *cardEnv, a *agentUT, sw *prompttest.Switch, c *wsClient) {
	t.Helper()
	deadline := time.Now().Add(boundService)
	for {
		card, svc := c.status(t, "st-down")
		if card == "" && svc == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status with pcscd gone: card %q, service %q; want none, down", card, svc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sw.Set(fixedPIN(markerPIN))
	t0 := time.Now()
	c.authenticate(t, "down")
	if m := c.reply(t, "down", 5*time.Second); errCode(m) != "service_unavailable" || time.Since(t0) > time.Second {
		t.Errorf("sign-in with pcscd gone: %v after %v, want service_unavailable at once", m, time.Since(t0))
	}
	if sw.Calls() != 0 {
		t.Error("a PIN prompt was shown with pcscd gone")
	}

	if err := e.p.Restart(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	c.event(t, "service_up", 10*time.Second)
	t.Logf("service_up %v after pcscd was back", time.Since(t0).Round(time.Millisecond))
	e.insert(t) // vpcd dropped the card with pcscd
	c.event(t, "card_inserted", 10*time.Second)
	if card, svc := c.status(t, "st-up"); card != wire.CardReady || svc != "up" {
		t.Errorf("status after pcscd is back: card %q, service %q", card, svc)
	}
	c.signIn(t, "again")
	if got := e.card.PINTries(); got != 3 {
		t.Errorf("card has %d PIN tries left, want 3", got)
	}
	if n := e.card.WriteCount(); n != 0 {
		t.Errorf("%d write commands reached the card", n)
	}
}
