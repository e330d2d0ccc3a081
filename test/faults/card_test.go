//go:build linux

package faults

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// Instruction bytes of the PIV commands the faults aim at.
const (
	insVerify      = 0x20
	insGenAuth     = 0x87
	insGetResponse = 0xC0
	insSelect      = 0xA4
)

// boundCard bounds the reply after a card fault: the card is pulled (the
// PC/SC layer waits up to 1 s for the reader to confirm the removal), or it
// answers garbage.
const boundCard = 5 * time.Second

// TestCardFaults: a fault at one APDU of a sign-in, through pcscd, vpcd and
// the virtual PIV card. The client gets the expected typed error within
// boundCard; no PIN try is spent that the user did not submit (the card's
// own counter); a VERIFY carrying the PIN is sent at most once; nothing is
// written to the card; then the agent serves the next sign-in.
func TestCardFaults(t *testing.T) {
	flip := func(resp []byte) []byte {
		out := bytes.Clone(resp)
		if len(out) > 40 {
			out[len(out)-40] ^= 0x5A // inside the signature, the status word intact
		}
		return out
	}
	tests := []struct {
		name string
		pin  string // what the user types
		arm  func(inj *vcard.Injector)
		// codes are the acceptable outcomes ("" is a token).
		codes []string
		// tries is the card's PIN tries left afterwards (3 before).
		tries int
		// verifies is the number of VERIFY commands carrying the PIN the
		// host sent; signed is the number of signatures the card made.
		verifies, signed int
		// prompts is how many PIN prompts were shown (none when the card
		// failed before the prompt).
		prompts int
	}{
		{
			name: "card pulled during VERIFY", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.WithData(vcard.INS(insVerify)), vcard.Action{Fault: vcard.Drop}, 1)
			},
			codes: []string{"card_removed"}, tries: 3, verifies: 1, signed: 0, prompts: 1,
		},
		{
			name: "card pulled after it checked a wrong PIN", pin: wrongPIN,
			// The card counts the try the user submitted; the agent never learns
			// the answer and must not send the PIN again.
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.WithData(vcard.INS(insVerify)), vcard.Action{Fault: vcard.DropAfter}, 1)
			},
			codes: []string{"card_removed"}, tries: 2, verifies: 1, signed: 0, prompts: 1,
		},
		{
			name: "card pulled during the signature", pin: markerPIN,
			arm:   func(inj *vcard.Injector) { inj.Arm(vcard.INS(insGenAuth), vcard.Action{Fault: vcard.Drop}, 1) },
			codes: []string{"card_removed"}, tries: 3, verifies: 1, signed: 0, prompts: 1,
		},
		{
			name: "card pulled right after signing", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.Unchained(vcard.INS(insGenAuth)), vcard.Action{Fault: vcard.DropAfter}, 1)
			},
			codes: []string{"card_removed"}, tries: 3, verifies: 1, signed: 1, prompts: 1,
		},
		{
			name: "card pulled while reading the PIN tries", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.WithoutData(vcard.INS(insVerify)), vcard.Action{Fault: vcard.Drop}, 1)
			},
			codes: []string{"card_removed"}, tries: 3, verifies: 0, signed: 0, prompts: 0,
		},
		{
			name: "garbage status word to VERIFY", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.WithData(vcard.INS(insVerify)), vcard.Action{Reply: []byte{0x6F, 0x00}}, 1)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 1, signed: 0, prompts: 1,
		},
		{
			name: "one-byte answer to the PIN tries", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.WithoutData(vcard.INS(insVerify)), vcard.Action{Reply: []byte{0x90}}, 1)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 0, signed: 0, prompts: 0,
		},
		{
			name: "garbage instead of a signature", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.Unchained(vcard.INS(insGenAuth)), vcard.Action{Reply: vcard.Garbage(1, 200, 0x9000)}, 1)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 1, signed: 0, prompts: 1,
		},
		{
			name: "signature corrupted on the way", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.Unchained(vcard.INS(insGenAuth)), vcard.Action{Corrupt: flip}, 1)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 1, signed: 1, prompts: 1,
		},
		{
			name: "endless GET RESPONSE chain", pin: markerPIN,
			// Every GET RESPONSE answers 200 bytes and "61 00 more": the agent
			// stops at its response bound instead of reading forever.
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.INS(insGetResponse), vcard.Action{Reply: vcard.Garbage(2, 200, 0x6100)}, 0)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 1, signed: 1, prompts: 1,
		},
		{
			name: "GET RESPONSE answered 61 00 without data for ever", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.INS(insGetResponse), vcard.Action{Reply: []byte{0x61, 0x00}}, 0)
			},
			codes: []string{"card_error"}, tries: 3, verifies: 1, signed: 1, prompts: 1,
		},
		{
			name: "wrong status to SELECT before signing", pin: markerPIN,
			arm: func(inj *vcard.Injector) {
				inj.Arm(vcard.INS(insSelect), vcard.Action{Reply: []byte{0x6A, 0x82}}, 0)
			},
			codes: []string{"card_error", "unsupported_card"}, tries: 3, verifies: 0, signed: 0, prompts: 0,
		},
		{
			name: "slow card: 150 ms per APDU", pin: markerPIN,
			arm:   func(inj *vcard.Injector) { inj.Arm(vcard.AnyAPDU, vcard.Action{Delay: 150 * time.Millisecond}, 0) },
			codes: []string{""}, tries: 3, verifies: 1, signed: 1, prompts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			e := newCardEnv(t)
			e.insert(t)
			sw := prompttest.NewSwitch(fixedPIN(tt.pin))
			a := startAgent(t, sw, agentOpts{})
			a.waitCard(t, wire.CardReady, 10*time.Second)
			c := dial(t, a.port)
			if e.card.PINTries() != 3 {
				t.Fatalf("card starts with %d tries", e.card.PINTries())
			}
			sigs := e.card.Signatures()
			e.clearSent()

			tt.arm(e.inj)
			start := time.Now()
			c.authenticate(t, 1)
			m := c.reply(t, 1, boundCard+10*time.Second)
			took := time.Since(start)
			e.inj.Disarm()
			code := errCode(m)
			if code == "" && m["token"] == nil {
				t.Fatalf("reply is neither a token nor an error: %v", m)
			}
			if !slices.Contains(tt.codes, code) {
				t.Errorf("code %q, want one of %q (reply %v)", code, tt.codes, m)
			}
			bound := boundCard
			if code == "" {
				bound = 15 * time.Second // the slow card: about 40 APDUs of 150 ms
			}
			if took > bound {
				t.Errorf("reply after %v, want within %v", took, bound)
			}
			t.Logf("%s after %v", code, took.Round(time.Millisecond))
			_, verifies := e.sentCount()
			if verifies != tt.verifies {
				t.Errorf("%d VERIFY commands with the PIN sent, want %d", verifies, tt.verifies)
			}
			if got := e.card.PINTries(); got != tt.tries {
				t.Errorf("card has %d PIN tries left, want %d", got, tt.tries)
			}
			if got := e.card.Signatures() - sigs; got != tt.signed {
				t.Errorf("card made %d signatures, want %d", got, tt.signed)
			}
			if n := e.card.WriteCount(); n != 0 {
				t.Errorf("%d write commands reached the card", n)
			}
			if sw.Calls() != tt.prompts {
				t.Errorf("%d prompts, want %d", sw.Calls(), tt.prompts)
			}

			// The agent keeps serving: status at once, and a sign-in with
			// the card (inserted again when the fault pulled it).
			if _, svc := c.status(t, "st"); svc != "up" {
				t.Errorf("service %q after the fault", svc)
			}
			if e.gone() {
				a.waitCard(t, "", 5*time.Second)
				e.insert(t)
			}
			a.waitCard(t, wire.CardReady, 10*time.Second)
			sw.Set(fixedPIN(markerPIN))
			c.signIn(t, 2)
			if got := e.card.PINTries(); got != 3 {
				t.Errorf("after a good sign-in the card has %d tries", got)
			}
			if e.restarts > 0 {
				t.Logf("pcscd restarted %d times to see the card again", e.restarts)
			}
			for _, r := range c.received() {
				if bytes.Contains([]byte(r), []byte(markerPIN)) || bytes.Contains([]byte(r), []byte(wrongPIN)) {
					t.Errorf("a message carries the PIN: %s", r)
				}
			}
		})
	}
}
