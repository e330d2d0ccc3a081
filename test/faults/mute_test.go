//go:build linux

package faults

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// A mute card, measured here: with Debian's vpcd 3.3 and pcscd 1.9.9 an
// APDU the card never answers blocks SCardTransmit for ever (still blocked
// after 200 s); it returns only when the card is pulled (vpcd's socket
// closes) or pcscd stops. A zero-length answer does the same. A card that
// never answers vpcd's GET ATR is not seen at all: pcscd keeps reporting the
// reader empty. Real readers' drivers give up by themselves (CCID after a
// few seconds) and pcscd reports a card that does not answer reset as
// SCARD_STATE_MUTE, which the monitor's unit tests cover with a fake.
//
// So the bound comes from the agent: pcsc.Conn waits at most its APDU
// timeout (pcsc.DefaultAPDUTimeout, 10 s) for one answer, then fails the
// operation with ErrCardUnresponsive (card_error on the wire), marks the card
// mute and sends nothing more to it until it is taken out. The tests set the
// timeout to muteTimeout to stay quick; -faults.long also runs one case with
// the default.

// defaultAPDUTimeout is pcsc.DefaultAPDUTimeout, the production bound.
const defaultAPDUTimeout = 10 * time.Second

// muteTimeout is the APDU timeout the mute tests give the agent.
const muteTimeout = 2 * time.Second

// openWithTimeout connects like the agent does, with APDU timeout d (0: the default).
func openWithTimeout(d time.Duration) func(ctx context.Context, reader string) (pcsc.Session, error) {
	return func(ctx context.Context, reader string) (pcsc.Session, error) {
		c, err := pcsc.Open(ctx, zap.NewNop(), reader)
		if err != nil {
			return nil, err
		}
		if d > 0 {
			c.SetAPDUTimeout(d)
		}
		return c, nil
	}
}

// TestMuteCard: the card stops answering at one APDU. The client gets
// card_error within the APDU timeout plus a margin, status keeps working
// and says "mute", the next sign-in fails at once (nothing is queued behind
// the silent card), no PIN try is spent, and after the card is taken out and
// inserted again a sign-in works.
func TestMuteCard(t *testing.T) {
	tests := []struct {
		name    string
		match   vcard.Matcher
		timeout time.Duration
		// atInsertion arms the fault before the card is inserted: it goes
		// mute while the agent reads it.
		atInsertion bool
		prompts     int
		verifies    int
	}{
		{name: "while the agent reads the inserted card", match: vcard.INS(0xCB), atInsertion: true},
		{name: "at the PIN-tries check", match: vcard.WithoutData(vcard.INS(insVerify)), prompts: 0},
		{name: "at VERIFY", match: vcard.WithData(vcard.INS(insVerify)), prompts: 1, verifies: 1},
		{name: "at the signature", match: vcard.Unchained(vcard.INS(insGenAuth)), prompts: 1, verifies: 1},
	}
	if *long {
		tests = append(tests, struct {
			name        string
			match       vcard.Matcher
			timeout     time.Duration
			atInsertion bool
			prompts     int
			verifies    int
		}{name: "at the signature, default APDU timeout", match: vcard.Unchained(vcard.INS(insGenAuth)), timeout: -1, prompts: 1, verifies: 1})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			e := newCardEnv(t)
			timeout := muteTimeout
			if tt.timeout < 0 {
				timeout = 0 // pcsc.DefaultAPDUTimeout
			}
			bound := muteTimeout + 3*time.Second
			if timeout == 0 {
				bound = defaultAPDUTimeout + 3*time.Second
			}
			sw := prompttest.NewSwitch(fixedPIN(markerPIN))
			a := startAgent(t, sw, agentOpts{Open: openWithTimeout(timeout)})
			if tt.atInsertion {
				e.inj.Arm(tt.match, vcard.Action{Fault: vcard.Mute}, 1)
			}
			e.insert(t)
			c := dial(t, a.port)
			start := time.Now()
			if tt.atInsertion {
				// The agent gives up reading the card and says it is mute.
				ev := c.event(t, "card_inserted", bound)
				if cd, _ := ev["card"].(map[string]any); cd["state"] != wire.CardMute || cd["hint"] == "" {
					t.Errorf("card_inserted %v, want state mute with a hint", ev)
				}
				t.Logf("card reported mute %v after insertion", time.Since(start).Round(time.Millisecond))
			} else {
				a.waitCard(t, wire.CardReady, 10*time.Second)
				e.clearSent()
				e.inj.Arm(tt.match, vcard.Action{Fault: vcard.Mute}, 1)
				start = time.Now()
				c.authenticate(t, 1)
				m := c.reply(t, 1, bound+10*time.Second)
				took := time.Since(start)
				if code := errCode(m); code != "card_error" {
					t.Errorf("reply %v, want card_error", m)
				}
				if took > bound {
					t.Errorf("card_error after %v, want within %v", took, bound)
				}
				t.Logf("card_error after %v (APDU timeout %v)", took.Round(time.Millisecond), timeout)
				if sw.Calls() != tt.prompts {
					t.Errorf("%d prompts, want %d", sw.Calls(), tt.prompts)
				}
				if _, v := e.sentCount(); v != tt.verifies {
					t.Errorf("%d VERIFY with the PIN sent, want %d", v, tt.verifies)
				}
			}
			// The agent keeps serving while the card is silent: status at
			// once, and the next sign-in fails at once.
			st, svc := c.status(t, "st")
			if st != wire.CardMute || svc != "up" {
				t.Errorf("status: card %q, service %q; want mute, up", st, svc)
			}
			t0 := time.Now()
			c.authenticate(t, 2)
			if m := c.reply(t, 2, 5*time.Second); !slices.Contains([]string{"card_error"}, errCode(m)) || time.Since(t0) > time.Second {
				t.Errorf("sign-in on the mute card: %v after %v, want card_error at once", m, time.Since(t0))
			}
			if got := e.card.PINTries(); got != 3 {
				t.Errorf("card has %d PIN tries left, want 3", got)
			}
			if n := e.card.WriteCount(); n != 0 {
				t.Errorf("%d write commands reached the card", n)
			}
			// Taken out and inserted again, the card works.
			e.inj.Disarm()
			e.remove(t)
			a.waitCard(t, "", 5*time.Second)
			e.insert(t)
			a.waitCard(t, wire.CardReady, 10*time.Second)
			c.signIn(t, 3)
		})
	}
}
