package pcsc

import (
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
)

// The hardware seam: the monitor, Conn and ListReaders use PC/SC only through
// these two interfaces, which are exactly the subset of github.com/ebfe/scard
// this package calls. Unit tests swap establishContext (or a Monitor's
// establish field) for a fake that simulates pcscd.

// scardContext is the part of *scard.Context this package uses.
type scardContext interface {
	ListReaders() ([]string, error)
	GetStatusChange(states []scard.ReaderState, timeout time.Duration) error
	Connect(reader string, mode scard.ShareMode, proto scard.Protocol) (scardCard, error)
	// Cancel wakes a GetStatusChange blocked on this context. It is the only
	// method that may be called while another goroutine uses the context.
	Cancel() error
	Release() error
}

// scardCard is the part of *scard.Card this package uses.
type scardCard interface {
	Transmit(cmd []byte) ([]byte, error)
	BeginTransaction() error
	EndTransaction(d scard.Disposition) error
	Reconnect(mode scard.ShareMode, proto scard.Protocol, d scard.Disposition) error
	Disconnect(d scard.Disposition) error
	Status() (*scard.CardStatus, error)
}

// establishContext opens a PC/SC context (SCardEstablishContext). Tests
// replace it and restore it with t.Cleanup.
var establishContext = establishSCardContext

func establishSCardContext() (scardContext, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		// ebfe/scard returns a nil *Context on failure: never wrap it, or a
		// later method call would panic.
		return nil, err
	}
	return realContext{c}, nil
}

// realContext adapts *scard.Context to scardContext (Connect returns the interface).
type realContext struct{ *scard.Context }

func (c realContext) Connect(reader string, mode scard.ShareMode, proto scard.Protocol) (scardCard, error) {
	card, err := c.Context.Connect(reader, mode, proto)
	if err != nil {
		return nil, err // a nil *scard.Card must not become a non-nil interface
	}
	return newBufferedCard(card), nil
}

// pnpNotification is the pseudo-reader whose state changes when a reader is
// added or removed (pcsc-lite and Windows both support it).
const pnpNotification = `\\?PnP?\Notification`

// infinite is GetStatusChange's "wait for ever" timeout in ebfe/scard.
const infinite = time.Duration(-1)
