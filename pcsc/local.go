package pcsc

import (
	"context"
	"sync"
)

// LocalSession is a Session over an in-process Transmitter (a virtual card's
// APDU handler), for fast unit tests of drivers without pcscd. Transactions
// are serialised with a mutex, as PC/SC would.
type LocalSession struct {
	T          Transmitter
	ReaderName string
	CardATR    []byte

	mu sync.Mutex
}

func (s *LocalSession) Transact(ctx context.Context, fn func(t Transmitter) error) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.T)
}

func (s *LocalSession) Reader() string { return s.ReaderName }
func (s *LocalSession) ATR() []byte    { return s.CardATR }
func (s *LocalSession) Close() error   { return nil }
