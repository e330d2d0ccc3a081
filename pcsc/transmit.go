//go:build !darwin

package pcsc

import (
	"bytes"
	"reflect"
	"sync"

	"github.com/ebfe/scard"
)

// maxTransmitResponse is the largest answer SCardTransmit can give: an extended
// APDU's 65,536 data bytes and SW1 SW2, with the 10 bytes of room
// github.com/ebfe/scard also leaves (its maxBufferSizeExtended).
const maxTransmitResponse = 4 + 3 + 65536 + 3 + 2

// bufferedCard is a *scard.Card whose Transmit reuses one response buffer
// per connection. ebfe/scard's own Transmit allocates a 65,548-byte buffer
// for every APDU (a sign-in sends about eight: half a megabyte of garbage).
// There is no maintained fork with a buffer-taking transmit, so this calls
// SCardTransmit itself (transmitInto, per OS) with the card handle and
// protocol read from the *scard.Card; only the answer's own bytes are
// copied out. Where that is not possible (cardHandle reports false, or an OS
// without transmitInto) it falls back to ebfe/scard's Transmit.
//
// The buffer is used by one Transmit at a time: Conn calls Transmit with
// its lock held, and after an unanswered APDU it sends nothing more.
type bufferedCard struct {
	*scard.Card
	buf []byte
}

func newBufferedCard(card *scard.Card) scardCard {
	if _, _, ok := cardHandle(card); !ok || !haveTransmitInto {
		return card
	}
	return &bufferedCard{Card: card}
}

func (c *bufferedCard) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) == 0 {
		return c.Card.Transmit(cmd) // its error for an empty command
	}
	handle, proto, _ := cardHandle(c.Card) // the protocol may change on Reconnect
	if c.buf == nil {
		c.buf = make([]byte, maxTransmitResponse)
	}
	n, err := transmitInto(handle, proto, cmd, c.buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(c.buf[:n]), nil
}

// scardCardFields are the indexes of *scard.Card's handle and protocol
// fields, found once (ok false when ebfe/scard's layout is not the one this
// was written for: then every card falls back to its own Transmit).
var scardCardFields = sync.OnceValues(func() ([2]int, bool) {
	t := reflect.TypeFor[scard.Card]()
	h, hok := t.FieldByName("handle")
	p, pok := t.FieldByName("activeProtocol")
	if !hok || !pok || h.Type.Kind() != reflect.Uintptr || p.Type != reflect.TypeFor[scard.Protocol]() {
		return [2]int{}, false
	}
	return [2]int{h.Index[0], p.Index[0]}, true
})

// cardHandle reads the PC/SC handle and the active protocol of card.
// Reading an unexported field's value through reflect is allowed (only
// setting it, or turning it into an interface, is not).
func cardHandle(card *scard.Card) (uintptr, scard.Protocol, bool) {
	idx, ok := scardCardFields()
	if !ok || card == nil {
		return 0, 0, false
	}
	v := reflect.ValueOf(card).Elem()
	return uintptr(v.Field(idx[0]).Uint()), scard.Protocol(v.Field(idx[1]).Uint()), true
}
