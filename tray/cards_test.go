package tray

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/wire"
)

// TestBuildSeveralCards: with several cards inserted the menu lists every
// card (holder, type, reader, state or tries left); with several usable
// ones the status says a sign-in asks which; one card changes nothing.
func TestBuildSeveralCards(t *testing.T) {
	second := readyCard(t, 400)
	second.PIN = &wire.PINReport{TriesLeft: 1}
	blocked := readyCard(t, 400)
	blocked.PIN = &wire.PINReport{TriesLeft: 0, Blocked: true}
	unsupported := &wire.CardState{State: wire.CardUnsupported, Kind: "retired", Type: "NHS series 4-6"}
	reading := &wire.CardState{State: wire.CardReading, Kind: "unknown"}
	for _, tc := range []struct {
		name   string
		st     wire.Status
		state  State
		status string
		cards  []string
	}{
		{name: "one card: no list", st: withReaders(readyCard(t, 400)), state: StateReady, status: "Smartcard ready (Mary SMITH)"},
		{name: "two ready", st: withReaders(readyCard(t, 400), readyCard(t, 400)), state: StateReady,
			status: "2 smartcards ready: a sign-in asks which to use",
			cards: []string{"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 00 - 3 PIN tries left",
				"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 01 - 3 PIN tries left"}},
		{name: "ready and last try", st: withReaders(readyCard(t, 400), second), state: StateReady,
			status: "2 smartcards ready: a sign-in asks which to use",
			cards: []string{"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 00 - 3 PIN tries left",
				"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 01 - last PIN try"}},
		{name: "ready, blocked, unsupported, reading, empty", st: withReaders(readyCard(t, 400), blocked, unsupported, reading, nil), state: StateReady,
			status: "Smartcard ready (Mary SMITH)",
			cards: []string{"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 00 - 3 PIN tries left",
				"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 01 - PIN blocked",
				"NHS series 4-6 - in Virtual PCD 00 02 - cannot be used",
				"in Virtual PCD 00 03 - reading..."}},
		{name: "more than fit", st: withReaders(readyCard(t, 400), readyCard(t, 400), readyCard(t, 400), readyCard(t, 400), readyCard(t, 400)), state: StateReady,
			status: "5 smartcards ready: a sign-in asks which to use",
			cards: []string{"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 00 - 3 PIN tries left",
				"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 01 - 3 PIN tries left",
				"Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 02 - 3 PIN tries left",
				"... and 2 more cards"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Build(Input{Connected: true, Status: tc.st})
			if v.State != tc.state || v.Menu.Status != tc.status {
				t.Errorf("state %q status %q, want %q %q", v.State, v.Menu.Status, tc.state, tc.status)
			}
			if !reflect.DeepEqual(v.Menu.Cards, tc.cards) {
				t.Errorf("card lines\n%q\nwant\n%q", v.Menu.Cards, tc.cards)
			}
		})
	}
}

// TestCardLinesHostile: a reader or holder name cannot add lines or escapes.
func TestCardLinesHostile(t *testing.T) {
	c := readyCard(t, 400)
	c.Holder.Name = "Eve\nCard blocked\x1b[2J"
	st := withReaders(c, readyCard(t, 400))
	st.Readers[0].Name = "Reader\r\n\u202eevil"
	for _, l := range Build(Input{Connected: true, Status: st}).Menu.Cards {
		if strings.ContainsAny(l, "\r\n\x1b\u202e") {
			t.Errorf("line %q", l)
		}
	}
}
