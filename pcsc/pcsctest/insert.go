package pcsctest

import (
	"testing"

	"github.com/cardagent/cardagent/pcsc/vcard"
)

// Insert puts card into vpcd slot (0 or 1) and removes it when the test ends.
// It first waits until pcscd sees the slot empty: pcscd notices a removal
// only at its next poll, and a card inserted before that would be taken for
// the previous one. It does not wait for pcscd to see the new card (use
// WaitCard), so tests can measure that delay themselves.
func (p *PCSCD) Insert(tb testing.TB, slot int, card vcard.Card, opts vcard.Options) *vcard.Slot {
	tb.Helper()
	p.WaitCard(tb, slot, false)
	s, err := vcard.Insert(p.Addr(slot), card, opts)
	if err != nil {
		tb.Fatalf("inserting virtual card: %v", err)
	}
	tb.Cleanup(func() { s.Remove() })
	return s
}
