package tray

import (
	"fmt"
	"strings"

	"github.com/cardagent/cardagent/agent/safetext"
	"github.com/cardagent/cardagent/agent/wire"
)

// MaxCards is how many card lines the menu has room for when several cards
// are inserted.
const MaxCards = 4

// cardLines lists every inserted card, one menu line each, in reader
// order, when more than one card is inserted (one card is the menu's card
// line alone): "Mary SMITH - NHS series 9/10 (PIV) - in Virtual PCD 00 01 -
// 3 PIN tries left". At most MaxCards lines; the last says how many more
// there are when they do not fit.
func cardLines(st wire.Status) []string {
	var lines []string
	n := 0
	for _, r := range st.Readers {
		if r.Card == nil {
			continue
		}
		n++
		if len(lines) < MaxCards {
			lines = append(lines, cardLine(r.Name, r.Card))
		}
	}
	if n < 2 {
		return nil
	}
	if n > MaxCards {
		lines[MaxCards-1] = fmt.Sprintf("... and %d more cards", n-MaxCards+1)
	}
	return lines
}

// cardLine describes one card: holder, type, reader, and its state or PIN tries left.
func cardLine(reader string, card *wire.CardState) string {
	var parts []string
	if h := holderName(card); h != "" {
		parts = append(parts, h)
	}
	if t := cardType(card); t != "" && card.State != wire.CardReading {
		parts = append(parts, t)
	}
	parts = append(parts, "in "+safetext.Line(reader, maxCardText))
	switch {
	case card.State == wire.CardReading:
		parts = append(parts, "reading...")
	case card.State != wire.CardReady:
		parts = append(parts, "cannot be used")
	case card.PIN != nil && card.PIN.Blocked:
		parts = append(parts, "PIN blocked")
	case card.PIN != nil && card.PIN.TriesLeft == 1:
		parts = append(parts, "last PIN try")
	case card.PIN != nil && card.PIN.TriesLeft >= 0:
		parts = append(parts, fmt.Sprintf("%d PIN tries left", card.PIN.TriesLeft))
	}
	return strings.Join(parts, " - ")
}

// usableCards counts the cards a sign-in could use: ready, PIN not blocked.
func usableCards(st wire.Status) int {
	n := 0
	for _, r := range st.Readers {
		if c := r.Card; c != nil && c.State == wire.CardReady && (c.PIN == nil || !c.PIN.Blocked) {
			n++
		}
	}
	return n
}
