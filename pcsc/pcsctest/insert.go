package pcsctest

import (
	"testing"

	"github.com/cardagent/cardagent/pcsc/vcard"
)

// Insert puts card into vpcd slot (0 or 1) and removes it when the test ends.
func (p *PCSCD) Insert(tb testing.TB, slot int, card vcard.Card, opts vcard.Options) *vcard.Slot {
	tb.Helper()
	s, err := vcard.Insert(p.Addr(slot), card, opts)
	if err != nil {
		tb.Fatalf("inserting virtual card: %v", err)
	}
	tb.Cleanup(func() { s.Remove() })
	return s
}
