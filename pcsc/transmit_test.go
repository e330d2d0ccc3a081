//go:build !darwin

package pcsc

import (
	"testing"

	"github.com/ebfe/scard"
)

// TestBufferedCardLayout: the buffered transmit finds ebfe/scard's handle
// and protocol fields. If an update of ebfe/scard renames them, cards fall
// back to its allocating Transmit; this test says so.
func TestBufferedCardLayout(t *testing.T) {
	if _, ok := scardCardFields(); !ok {
		t.Fatal("*scard.Card has no handle/activeProtocol fields: the buffered transmit is off")
	}
	if _, ok := newBufferedCard(&scard.Card{}).(*bufferedCard); !ok && haveTransmitInto {
		t.Error("newBufferedCard did not wrap the card")
	}
}
