package pcsc

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
)

// fakePCSC simulates pcscd for unit tests: readers with cards, event
// counters, the PnP pseudo-reader, a blocking GetStatusChange that SCardCancel
// wakes only while it is blocked (as in pcsc-lite), and the service going
// away (a blocked call gets an RPC transport error, later calls "service not
// available", and the old contexts never work again).
type fakePCSC struct {
	mu      sync.Mutex
	up      bool
	gen     int // service generation: contexts of an older one are dead
	readers []*fakeReader
	changed chan struct{} // closed and replaced on every change
	// nonBlocking makes GetStatusChange return at once whatever the
	// caller's states say, as Wine's winscard does.
	nonBlocking bool
	// enterDelay is spent in GetStatusChange before it looks at anything:
	// a Cancel then is lost, as when it comes just before the call blocks.
	enterDelay time.Duration

	gscCalls  atomic.Int64
	contexts  atomic.Int64 // established
	released  atomic.Int64
	establish atomic.Int64 // EstablishContext calls, failed ones included
}

type fakeReader struct {
	name    string
	present bool
	mute    bool
	atr     []byte
	counter uint16
	resets  int // card resets by "another program"
	// transmit answers APDUs of the card in the reader (Conn tests).
	transmit func(cmd []byte) ([]byte, error)
}

func newFakePCSC(readers ...string) *fakePCSC {
	f := &fakePCSC{up: true, changed: make(chan struct{})}
	for _, n := range readers {
		f.readers = append(f.readers, &fakeReader{name: n})
	}
	return f
}

// notify wakes blocked calls; f.mu must be held.
func (f *fakePCSC) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakePCSC) reader(name string) *fakeReader {
	for _, r := range f.readers {
		if r.name == name {
			return r
		}
	}
	return nil
}

func (f *fakePCSC) do(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	f.notify()
}

func (f *fakePCSC) insert(reader string, atr []byte) {
	f.do(func() {
		r := f.reader(reader)
		r.present, r.mute, r.atr = true, false, atr
		r.counter++
	})
}

func (f *fakePCSC) insertMute(reader string) {
	f.do(func() {
		r := f.reader(reader)
		r.present, r.mute, r.atr = true, true, nil
		r.counter++
	})
}

func (f *fakePCSC) remove(reader string) {
	f.do(func() {
		r := f.reader(reader)
		r.present, r.mute, r.atr = false, false, nil
		r.counter++
	})
}

// swap replaces the card at once: no caller ever sees the reader empty.
func (f *fakePCSC) swap(reader string, atr []byte) {
	f.do(func() {
		r := f.reader(reader)
		r.present, r.mute, r.atr = true, false, atr
		r.counter += 2
	})
}

func (f *fakePCSC) addReader(name string) {
	f.do(func() { f.readers = append(f.readers, &fakeReader{name: name}) })
}

func (f *fakePCSC) removeReader(name string) {
	f.do(func() {
		f.readers = slices.DeleteFunc(f.readers, func(r *fakeReader) bool { return r.name == name })
	})
}

// stop kills the service: cards are lost (as with vpcd), readers stay configured.
func (f *fakePCSC) stop() {
	f.do(func() {
		f.up = false
		f.gen++
		for _, r := range f.readers {
			r.present, r.mute, r.atr, r.counter = false, false, nil, 0
		}
	})
}

func (f *fakePCSC) start() { f.do(func() { f.up = true }) }

func (f *fakePCSC) setNonBlocking(v bool) { f.do(func() { f.nonBlocking = v }) }

// establishContext is the fake SCardEstablishContext.
func (f *fakePCSC) establishContext() (scardContext, error) {
	f.establish.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return nil, scard.ErrNoService
	}
	f.contexts.Add(1)
	return &fakeContext{f: f, gen: f.gen, cancel: make(chan struct{}, 1)}, nil
}

type fakeContext struct {
	f        *fakePCSC
	gen      int
	cancel   chan struct{}
	waiting  bool // guarded by f.mu
	released bool // guarded by f.mu
	commErr  bool // the RPC transport error was returned once
}

// check returns the error for a call on a context whose service is gone; f.mu held.
func (c *fakeContext) check() error {
	if c.released {
		return scard.ErrInvalidHandle
	}
	if c.gen != c.f.gen || !c.f.up {
		if !c.commErr {
			c.commErr = true
			return scard.ErrCommError
		}
		return scard.ErrNoService
	}
	return nil
}

func (c *fakeContext) ListReaders() ([]string, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(); err != nil {
		return nil, err
	}
	if len(c.f.readers) == 0 {
		return nil, scard.ErrNoReadersAvailable
	}
	var names []string
	for _, r := range c.f.readers {
		names = append(names, r.name)
	}
	return names, nil
}

func (r *fakeReader) flags() scard.StateFlag {
	st := scard.StateEmpty
	if r.present {
		st = scard.StatePresent
		if r.mute {
			st |= scard.StateMute
		}
	}
	return st | scard.StateFlag(r.counter)<<16
}

func (c *fakeContext) GetStatusChange(states []scard.ReaderState, timeout time.Duration) error {
	f := c.f
	f.gscCalls.Add(1)
	f.mu.Lock()
	delay := f.enterDelay
	f.mu.Unlock()
	time.Sleep(delay)
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	f.mu.Lock()
	for {
		if err := c.check(); err != nil {
			f.mu.Unlock()
			return err
		}
		for _, s := range states {
			if s.Reader != pnpNotification && f.reader(s.Reader) == nil {
				f.mu.Unlock()
				return scard.ErrUnknownReader
			}
		}
		changed := false
		for i := range states {
			s := &states[i]
			cur := s.CurrentState
			if f.nonBlocking {
				cur = scard.StateUnaware // Wine passes the name only
			}
			var ev scard.StateFlag
			if s.Reader == pnpNotification {
				// Windows (and pcsc-lite 2) semantics: the reader count is in the upper word.
				ev = scard.StateFlag(len(f.readers)) << 16
			} else {
				r := f.reader(s.Reader)
				ev = r.flags()
				if r.present {
					s.Atr = bytes.Clone(r.atr) // like ebfe/scard, an empty reader leaves Atr alone
				}
			}
			if ev != cur&^scard.StateChanged {
				ev |= scard.StateChanged
				changed = true
			}
			s.EventState = ev
		}
		if changed || f.nonBlocking {
			f.mu.Unlock()
			return nil
		}
		if timeout == 0 {
			f.mu.Unlock()
			return scard.ErrTimeout
		}
		ch := f.changed
		c.waiting = true
		f.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-c.cancel:
			err = scard.ErrCancelled
		case <-deadline:
			err = scard.ErrTimeout
		}
		f.mu.Lock()
		c.waiting = false
		if err != nil {
			f.mu.Unlock()
			return err
		}
	}
}

// Cancel wakes a blocked GetStatusChange; like pcsc-lite, it does nothing
// when no call is blocked.
func (c *fakeContext) Cancel() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.waiting {
		select {
		case c.cancel <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *fakeContext) Release() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.released {
		return scard.ErrInvalidHandle
	}
	c.released = true
	c.f.released.Add(1)
	if c.gen != c.f.gen || !c.f.up {
		return scard.ErrNoService
	}
	return nil
}

func (c *fakeContext) Connect(reader string, mode scard.ShareMode, proto scard.Protocol) (scardCard, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if err := c.check(); err != nil {
		return nil, err
	}
	if mode != scard.ShareShared {
		panic("fake: only shared connections are allowed")
	}
	r := c.f.reader(reader)
	switch {
	case r == nil:
		return nil, scard.ErrUnknownReader
	case !r.present:
		return nil, scard.ErrNoSmartcard
	case r.mute:
		return nil, scard.ErrUnresponsiveCard
	}
	return &fakeCard{c: c, r: r, counter: r.counter, resets: r.resets}, nil
}

// fakeCard is a shared connection to the card in a fake reader. It fails
// with "removed" once the reader's event counter moved, and with "reset"
// once per reset by another program until Reconnect.
type fakeCard struct {
	c       *fakeContext
	r       *fakeReader
	counter uint16
	resets  int

	inTx         bool
	begins, ends int
	reconnects   int
	disconnected bool
	lastDisp     scard.Disposition
}

func (k *fakeCard) state() error {
	if err := k.c.check(); err != nil {
		return err
	}
	if k.disconnected {
		return scard.ErrInvalidHandle
	}
	if k.r.counter != k.counter {
		return scard.ErrRemovedCard
	}
	if k.r.resets != k.resets {
		return scard.ErrResetCard
	}
	return nil
}

func (k *fakeCard) BeginTransaction() error {
	k.c.f.mu.Lock()
	defer k.c.f.mu.Unlock()
	k.begins++
	if err := k.state(); err != nil {
		return err
	}
	k.inTx = true
	return nil
}

func (k *fakeCard) EndTransaction(d scard.Disposition) error {
	k.c.f.mu.Lock()
	defer k.c.f.mu.Unlock()
	k.ends++
	k.lastDisp = d
	k.inTx = false
	return k.state()
}

func (k *fakeCard) Reconnect(mode scard.ShareMode, proto scard.Protocol, d scard.Disposition) error {
	k.c.f.mu.Lock()
	defer k.c.f.mu.Unlock()
	k.reconnects++
	if mode != scard.ShareShared {
		panic("fake: only shared connections are allowed")
	}
	if err := k.c.check(); err != nil {
		return err
	}
	if k.r.counter != k.counter {
		return scard.ErrRemovedCard
	}
	k.resets = k.r.resets
	return nil
}

func (k *fakeCard) Disconnect(d scard.Disposition) error {
	k.c.f.mu.Lock()
	defer k.c.f.mu.Unlock()
	k.lastDisp = d
	err := k.state()
	k.disconnected = true
	return err
}

func (k *fakeCard) Status() (*scard.CardStatus, error) {
	k.c.f.mu.Lock()
	defer k.c.f.mu.Unlock()
	if err := k.state(); err != nil && err != scard.ErrResetCard {
		return nil, err
	}
	return &scard.CardStatus{Reader: k.r.name, State: scard.Present, ActiveProtocol: scard.ProtocolT1, Atr: bytes.Clone(k.r.atr)}, nil
}

func (k *fakeCard) Transmit(cmd []byte) ([]byte, error) {
	k.c.f.mu.Lock()
	if !k.inTx {
		k.c.f.mu.Unlock()
		panic("fake: Transmit outside a transaction")
	}
	if err := k.state(); err != nil {
		k.c.f.mu.Unlock()
		return nil, err
	}
	fn := k.r.transmit
	k.c.f.mu.Unlock()
	if fn == nil {
		return []byte{0x6D, 0x00}, nil
	}
	return fn(cmd)
}
