package pcsc

import "github.com/cardagent/cardagent/pcsc/scard"

// On macOS the cards come from the purego binding (pcsc/scard), whose
// Transmit is used as it is: the buffered transmit reads ebfe/scard's card
// handle, and macOS does not use ebfe/scard.
func newBufferedCard(card *scard.Card) scardCard { return card }
