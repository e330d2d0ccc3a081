package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
	"go.uber.org/zap"
)

// DefaultAPDUTimeout bounds how long one APDU may go unanswered before the
// card is taken for mute. A real reader's driver gives up on a silent card by
// itself (CCID: a few seconds, stretched by the card's waiting time); vpcd and
// broken drivers never do, and SCardTransmit then blocks until the card is
// pulled. No legitimate smart-card command the agent sends (an RSA-2048
// signature takes 0.2-2 s on the slowest cards) comes close to it.
const DefaultAPDUTimeout = 10 * time.Second

// Conn is a shared connection to the card in one reader: the PC/SC Session
// that card drivers use. It never holds the card exclusively except inside
// Transact, so other programs (browsers' PKCS#11 modules, minidrivers) can
// use the card between operations. Safe for concurrent use; transactions
// are serialised.
type Conn struct {
	log    *zap.Logger
	reader string
	atr    []byte
	// removalWait bounds how long a failed transmit waits for the reader to
	// report the card gone, to tell "removed" from "does not answer".
	removalWait time.Duration
	// apduTimeout (nanoseconds) bounds one APDU; <= 0: no bound.
	apduTimeout atomic.Int64

	mu     sync.Mutex // held for a whole transaction, and by Close
	ctx    scardContext
	card   scardCard
	closed bool
	// stuck is set once an APDU went unanswered past apduTimeout: the
	// SCardTransmit is still blocked and holds the PC/SC context, so nothing
	// more is sent on this connection. It is closed when that call returns
	// (the card was pulled, or the service stopped).
	stuck chan struct{}
}

var _ Session = (*Conn)(nil)

// errClosed is returned by Transact after Close.
var errClosed = errors.New("pcsc: connection closed")

// Open connects to the card in reader. It uses its own PC/SC context (a
// pcsc-lite context blocked in the Monitor's GetStatusChange cannot serve
// other calls) and connects in shared mode with T=0 or T=1, never exclusively.
func Open(ctx context.Context, log *zap.Logger, reader string) (*Conn, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("connecting to card in %q: %w", reader, cancelled(ctx))
	}
	if log == nil {
		log = zap.NewNop()
	}
	sc, err := establishContext()
	if err != nil {
		return nil, fmt.Errorf("connecting to card in %q: %w", reader, mapError(err))
	}
	card, err := sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		_ = sc.Release()
		return nil, fmt.Errorf("connecting to card in %q: %w", reader, mapError(err))
	}
	st, err := card.Status()
	if err != nil {
		_ = card.Disconnect(scard.LeaveCard)
		_ = sc.Release()
		return nil, fmt.Errorf("reading card status in %q: %w", reader, mapError(err))
	}
	c := &Conn{
		log:         log.With(zap.String("reader", reader)),
		reader:      reader,
		atr:         bytes.Clone(st.Atr),
		removalWait: time.Second,
		ctx:         sc,
		card:        card,
	}
	c.apduTimeout.Store(int64(DefaultAPDUTimeout))
	c.log.Debug("connected to card", zap.String("atr", HexString(c.atr)))
	return c, nil
}

// SetAPDUTimeout changes how long one APDU may go unanswered
// (DefaultAPDUTimeout); d <= 0 waits for ever. After a timeout the
// connection is unusable: every Transact fails with ErrCardUnresponsive.
func (c *Conn) SetAPDUTimeout(d time.Duration) { c.apduTimeout.Store(int64(d)) }

// Reader is the reader's name.
func (c *Conn) Reader() string { return c.reader }

// ATR is the card's answer to reset, read when the connection was opened.
func (c *Conn) ATR() []byte { return bytes.Clone(c.atr) }

// Transact runs fn inside one PC/SC transaction: the card is held
// exclusively for exactly the length of fn, then released with the card
// left powered (and its state, such as a selected application, intact).
// If another program reset the card since the last transaction, Transact
// reconnects once before beginning (nothing has been sent yet, so this is
// safe). A card pulled during fn makes the Transmitter return an error
// matching ErrCardRemoved. ctx is checked before starting; fn itself is not
// interrupted.
func (c *Conn) Transact(ctx context.Context, fn func(t Transmitter) error) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	if c.stuck != nil {
		return fmt.Errorf("%w: an earlier command was never answered", ErrNoAnswer)
	}
	if err := c.begin(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	t := &cardTransmitter{c: c}
	err := fn(t)
	t.done.Store(true)
	if c.stuck != nil {
		// The context is blocked in the unanswered command: ending the
		// transaction would block too.
		return err
	}
	if eerr := c.card.EndTransaction(scard.LeaveCard); eerr != nil {
		// The operation itself finished (or failed with its own error): a
		// card pulled right after the last APDU does not undo it.
		c.log.Debug("ending transaction", zap.Error(mapError(eerr)))
	}
	return err
}

func (c *Conn) begin() error {
	err := c.card.BeginTransaction()
	if errors.Is(err, scard.ErrResetCard) {
		c.log.Info("card was reset by another program; reconnecting")
		if err = c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard); err == nil {
			err = c.card.BeginTransaction()
		}
	}
	return mapError(err)
}

// Close disconnects from the card (leaving it powered) and releases the
// context. Closing a connection whose card or service is already gone is
// not an error.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.stuck != nil {
		// Disconnect and release once the unanswered command returns; until
		// then they would block.
		stuck, card, sc := c.stuck, c.card, c.ctx
		go func() {
			<-stuck
			_ = card.Disconnect(scard.LeaveCard)
			_ = sc.Release()
		}()
		return nil
	}
	derr := mapError(c.card.Disconnect(scard.LeaveCard))
	rerr := mapError(c.ctx.Release())
	for _, err := range []error{derr, rerr} {
		if err != nil && !errors.Is(err, ErrCardRemoved) && !errors.Is(err, ErrNoCard) && !errors.Is(err, ErrServiceUnavailable) {
			return fmt.Errorf("closing card connection: %w", err)
		}
	}
	return nil
}

// cardTransmitter is the Transmitter handed to a transaction's fn.
type cardTransmitter struct {
	c    *Conn
	done atomic.Bool
}

func (t *cardTransmitter) Transmit(cmd []byte) ([]byte, error) {
	if t.done.Load() {
		return nil, errors.New("pcsc: transmitter used after its transaction ended")
	}
	resp, err := t.c.transmit(cmd)
	if t.c.stuck != nil {
		return nil, fmt.Errorf("transmitting APDU: %w", err)
	}
	if err == nil && len(resp) >= 2 {
		return resp, nil
	}
	if err != nil {
		err = mapError(err)
		if errors.Is(err, ErrCardRemoved) || errors.Is(err, ErrServiceUnavailable) {
			return nil, fmt.Errorf("transmitting APDU: %w", err)
		}
	} else {
		// vpcd (and some readers) answer an empty response when the card
		// went away mid-APDU.
		err = fmt.Errorf("%w: response of %d bytes", ErrCardUnresponsive, len(resp))
	}
	if t.c.cardGone() {
		return nil, fmt.Errorf("transmitting APDU: %w", ErrCardRemoved)
	}
	return nil, fmt.Errorf("transmitting APDU: %w", err)
}

// transmit sends one APDU and waits at most apduTimeout for the answer.
// When none comes it marks the connection stuck and returns
// ErrCardUnresponsive; the blocked call goes on in the background until the
// card is pulled or the service stops. Called with c.mu held.
func (c *Conn) transmit(cmd []byte) ([]byte, error) {
	d := time.Duration(c.apduTimeout.Load())
	if d <= 0 {
		return c.card.Transmit(cmd)
	}
	type result struct {
		resp []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		r, e := c.card.Transmit(cmd)
		ch <- result{r, e}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-timer.C:
	}
	stuck := make(chan struct{})
	c.stuck = stuck
	c.log.Warn("the card did not answer: it is taken for mute until it is taken out", zap.Duration("waited", d))
	go func() {
		<-ch
		close(stuck)
	}()
	return nil, fmt.Errorf("%w within %v", ErrNoAnswer, d)
}

// cardGone reports whether the card of this connection has left the
// reader. A reader notices a pulled card only at its next presence poll,
// so it waits (event driven, at most removalWait) for the reader's state
// to change. Called with c.mu held.
func (c *Conn) cardGone() bool {
	if _, err := c.card.Status(); err != nil {
		err = mapError(err)
		if errors.Is(err, ErrCardRemoved) || errors.Is(err, ErrNoCard) {
			return true
		}
	}
	st := []scard.ReaderState{{Reader: c.reader, CurrentState: scard.StateUnaware}}
	if err := c.ctx.GetStatusChange(st, 0); err != nil {
		return errors.Is(err, scard.ErrUnknownReader) // the reader went, and the card with it
	}
	cur := st[0].EventState &^ scard.StateChanged
	if cur&scard.StatePresent == 0 {
		return true
	}
	st[0].CurrentState = cur
	if err := c.ctx.GetStatusChange(st, c.removalWait); err != nil {
		return false // timeout: the card is still there, it just does not answer
	}
	ev := st[0].EventState
	return ev&scard.StatePresent == 0 || ev>>16 != cur>>16
}
