package pcsc

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
	"go.uber.org/zap"
)

// EventKind says what happened to a reader, a card or the PC/SC service.
type EventKind string

const (
	// ReaderAdded: a reader appeared (at start, when plugged in, or when the service came back).
	ReaderAdded EventKind = "reader-added"
	// ReaderRemoved: a reader went away (unplugged, or the service stopped).
	ReaderRemoved EventKind = "reader-removed"
	// CardInserted: a card that answered reset is in the reader; Event.ATR holds its ATR.
	CardInserted EventKind = "card-inserted"
	// CardRemoved: the card left the reader (or the service stopped); Event.ATR is the old card's ATR.
	CardRemoved EventKind = "card-removed"
	// CardMute: a card is in the reader but does not answer (inserted the wrong way, broken contact).
	CardMute EventKind = "card-mute"
	// ServiceDown: the PC/SC service is not running or went away. The monitor keeps
	// trying to reconnect; ServiceUp follows when it is back.
	ServiceDown EventKind = "service-down"
	// ServiceUp: the PC/SC service is back after a ServiceDown.
	ServiceUp EventKind = "service-up"
)

// Event is one change the Monitor saw.
type Event struct {
	Kind   EventKind
	Reader string // empty for ServiceDown and ServiceUp
	ATR    []byte // for CardInserted and CardRemoved
	Time   time.Time
}

// ReaderStatus is a reader and what is in it.
type ReaderStatus struct {
	Name    string
	Present bool   // a card is in the reader
	ATR     []byte // the card's ATR when Present (empty for a mute card)
	Mute    bool   // the card in the reader does not answer
}

// Monitor watches readers and cards and reports changes as Events. It is
// event driven: it blocks in SCardGetStatusChange on every reader and on the
// PnP pseudo-reader (so readers plugged in later are seen) and never polls on
// a timer. It survives the PC/SC service going away: it reports the loss,
// reconnects with a capped backoff and reports what it finds.
type Monitor struct {
	log     *zap.Logger
	handler func(Event)

	// establish opens a PC/SC context; tests replace it with a fake.
	establish func() (scardContext, error)
	now       func() time.Time
	// serviceRetry paces reconnection while the service is down; spinRetry
	// slows the loop when GetStatusChange returns without a change (Wine,
	// broken drivers); cancelRetry is how often shutdown repeats SCardCancel
	// until the loop has left GetStatusChange.
	serviceRetry backoff
	spinRetry    backoff
	cancelRetry  time.Duration

	serving atomic.Bool

	mu       sync.Mutex
	cur      scardContext // the context the loop may be blocked on; Cancel wakes it
	snapshot []ReaderStatus

	// Owned by the Serve goroutine.
	readers []*trackedReader
	state   serviceState
}

type serviceState int

const (
	serviceUnknown serviceState = iota
	serviceUp
	serviceDown
)

// trackedReader is what the monitor last saw of one reader.
type trackedReader struct {
	name string
	// current is the last EventState (without SCARD_STATE_CHANGED): it is
	// passed back as CurrentState so GetStatusChange blocks until it differs.
	current scard.StateFlag
	// fresh is set until the first report on a new context: the event
	// counter of an earlier context is not comparable.
	fresh   bool
	present bool
	mute    bool
	atr     []byte
	counter uint16
}

// NewMonitor returns a Monitor that calls handler for every event, in order,
// from the goroutine running Serve. handler must not block for long (hand
// card work to another goroutine); it may call Snapshot.
func NewMonitor(log *zap.Logger, handler func(Event)) *Monitor {
	if log == nil {
		log = zap.NewNop()
	}
	if handler == nil {
		handler = func(Event) {}
	}
	return &Monitor{
		log:          log,
		handler:      handler,
		establish:    establishContext,
		now:          time.Now,
		serviceRetry: backoff{min: 100 * time.Millisecond, max: 2 * time.Second},
		spinRetry:    backoff{min: 10 * time.Millisecond, max: time.Second},
		cancelRetry:  20 * time.Millisecond,
	}
}

// Snapshot returns the readers the monitor knows and their cards, in the
// order PC/SC lists them. It is empty while the service is down. Safe for
// concurrent use; the result is a copy.
func (m *Monitor) Snapshot() []ReaderStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ReaderStatus, len(m.snapshot))
	for i, r := range m.snapshot {
		r.ATR = bytes.Clone(r.ATR)
		out[i] = r
	}
	return out
}

// Serve watches until ctx is cancelled, then returns nil after every
// goroutine it started has ended. A lost PC/SC service is not an error: it
// is reported as events and Serve keeps reconnecting.
func (m *Monitor) Serve(ctx context.Context) error {
	if !m.serving.CompareAndSwap(false, true) {
		return errors.New("pcsc: monitor is already serving")
	}
	defer m.serving.Store(false)

	loopDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.cancelOnDone(ctx, loopDone)
	}()
	m.run(ctx)
	close(loopDone)
	wg.Wait()
	return nil
}

// cancelOnDone wakes the loop from GetStatusChange when ctx is done.
// SCardCancel only wakes a call that is already blocked: the loop may be
// between its ctx check and the call, so Cancel is repeated until it has left.
func (m *Monitor) cancelOnDone(ctx context.Context, loopDone <-chan struct{}) {
	select {
	case <-loopDone:
		return
	case <-ctx.Done():
	}
	t := time.NewTicker(m.cancelRetry)
	defer t.Stop()
	for {
		m.mu.Lock()
		if m.cur != nil {
			_ = m.cur.Cancel()
		}
		m.mu.Unlock()
		select {
		case <-loopDone:
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) run(ctx context.Context) {
	m.state = serviceUnknown
	m.readers = nil
	m.publish()
	m.serviceRetry.reset()
	for ctx.Err() == nil {
		c, err := m.establish()
		if err != nil {
			m.serviceGone(err)
			if !sleepCtx(ctx, m.serviceRetry.next()) {
				return
			}
			continue
		}
		m.setCurrent(c)
		err = m.watch(ctx, c)
		m.setCurrent(nil)
		_ = c.Release() // after a service loss this fails too; nothing to do about it
		if ctx.Err() != nil {
			return
		}
		if serviceLost(err) {
			m.serviceGone(err)
		} else {
			m.log.Warn("PC/SC context failed; reconnecting", zap.Error(err))
		}
		if !sleepCtx(ctx, m.serviceRetry.next()) {
			return
		}
	}
}

func (m *Monitor) setCurrent(c scardContext) {
	m.mu.Lock()
	m.cur = c
	m.mu.Unlock()
}

// serviceGone reports everything the monitor knew as removed, then ServiceDown (once).
func (m *Monitor) serviceGone(err error) {
	if m.state == serviceDown {
		return
	}
	var evs []Event
	for _, r := range m.readers {
		evs = append(evs, r.gone(m.now())...)
	}
	m.readers = nil
	m.state = serviceDown
	evs = append(evs, Event{Kind: ServiceDown, Time: m.now()})
	m.log.Warn("smart-card service unavailable; waiting for it to come back", zap.Error(mapError(err)))
	m.publish()
	m.emit(evs)
}

// watch runs the event loop on one context until ctx is done (nil) or the
// context fails (the error).
func (m *Monitor) watch(ctx context.Context, c scardContext) error {
	names, err := listReaderNames(c)
	if err != nil {
		return err
	}
	var evs []Event
	if m.state == serviceDown {
		m.log.Info("smart-card service is back")
		evs = append(evs, Event{Kind: ServiceUp, Time: m.now()})
	}
	m.state = serviceUp
	m.serviceRetry.reset()
	for _, r := range m.readers {
		// A new context: ask for the full state again.
		r.current, r.fresh = scard.StateUnaware, true
	}
	_, added := m.syncReaders(names)
	evs = append(evs, added...)
	m.publish()
	m.emit(evs)

	// Windows (and newer pcsc-lite) keep the reader count in the upper word
	// of the PnP pseudo-reader's state; pcsc-lite 1.9 ignores it.
	pnp := scard.StateFlag(len(m.readers)) << 16
	m.spinRetry.reset()
	for {
		if ctx.Err() != nil {
			return nil
		}
		states := make([]scard.ReaderState, 0, len(m.readers)+1)
		for _, r := range m.readers {
			states = append(states, scard.ReaderState{Reader: r.name, CurrentState: r.current})
		}
		states = append(states, scard.ReaderState{Reader: pnpNotification, CurrentState: pnp})

		err := c.GetStatusChange(states, infinite)
		relist := false
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil // woken by Cancel for shutdown
		case serviceLost(err):
			return err
		case errors.Is(err, scard.ErrUnknownReader):
			relist = true // a reader went away between listing and waiting
		default:
			// ErrTimeout, a stray ErrCancelled, a driver's odd code: not a
			// change. The spin guard below keeps this from looping hot.
			m.log.Debug("GetStatusChange failed", zap.Error(err))
		}

		changed := false
		var evs []Event
		if err == nil {
			for i, r := range m.readers {
				ev, ch, gone := r.update(states[i].EventState, states[i].Atr, m.now())
				evs = append(evs, ev...)
				changed = changed || ch
				relist = relist || gone
			}
			p := states[len(states)-1].EventState
			if p&scard.StateChanged != 0 {
				relist = true
			}
			pnp = p &^ scard.StateChanged
			// pcsc-lite 1.9 signals a new reader only if it appears while
			// the call is blocked, so one added between listing and waiting
			// would go unseen: list again after every real change (events
			// are rare; this costs one round trip to pcscd).
			relist = relist || changed
		}
		if relist {
			names, err := listReaderNames(c)
			if serviceLost(err) {
				m.publish()
				m.emit(evs)
				return err
			}
			if err != nil {
				m.log.Debug("listing readers", zap.Error(err))
			} else {
				ch, more := m.syncReaders(names)
				changed = changed || ch
				evs = append(evs, more...)
			}
		}
		if changed {
			m.publish()
			m.emit(evs)
			m.spinRetry.reset()
			continue
		}
		// GetStatusChange returned although nothing differs from what was
		// passed in: it does not block here (Wine's winscard, some drivers).
		// Back off instead of spinning; a real change resets the delay.
		d := m.spinRetry.next()
		if d == m.spinRetry.min {
			m.log.Debug("GetStatusChange returned without a change; backing off")
		}
		if !sleepCtx(ctx, d) {
			return nil
		}
	}
}

// syncReaders makes the tracked readers match names: readers that went away
// are reported removed (with their cards), new ones added. It reports
// whether anything changed.
func (m *Monitor) syncReaders(names []string) (bool, []Event) {
	var evs []Event
	now := m.now()
	known := make(map[string]*trackedReader, len(m.readers))
	for _, r := range m.readers {
		known[r.name] = r
	}
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
	}
	changed := false
	for _, r := range m.readers {
		if !listed[r.name] {
			evs = append(evs, r.gone(now)...)
			changed = true
		}
	}
	next := make([]*trackedReader, 0, len(names))
	for _, n := range names {
		if r, ok := known[n]; ok {
			next = append(next, r)
			continue
		}
		if n == pnpNotification {
			continue
		}
		next = append(next, &trackedReader{name: n, current: scard.StateUnaware, fresh: true})
		evs = append(evs, Event{Kind: ReaderAdded, Reader: n, Time: now})
		changed = true
	}
	m.readers = next
	return changed, evs
}

// gone returns the events for a reader that disappeared with whatever was in it.
func (r *trackedReader) gone(now time.Time) []Event {
	var evs []Event
	if r.present {
		evs = append(evs, Event{Kind: CardRemoved, Reader: r.name, ATR: r.atr, Time: now})
	}
	return append(evs, Event{Kind: ReaderRemoved, Reader: r.name, Time: now})
}

// update takes one reader's new EventState. It returns the events it means,
// whether the state differs from the one passed in, and whether the reader
// itself has gone (the reader list must be read again).
func (r *trackedReader) update(ev scard.StateFlag, atr []byte, now time.Time) (evs []Event, changed, gone bool) {
	ev &^= scard.StateChanged
	if ev == r.current {
		return nil, false, false
	}
	r.current = ev
	if ev&(scard.StateUnknown|scard.StateIgnore) != 0 {
		return nil, true, true
	}
	present := ev&scard.StatePresent != 0
	mute := present && ev&scard.StateMute != 0
	counter := uint16(ev >> 16)
	if present {
		atr = bytes.Clone(atr)
	} else {
		atr = nil // ebfe/scard leaves the old ATR in place when the reader is empty
	}
	inserted := func() Event {
		if mute {
			return Event{Kind: CardMute, Reader: r.name, Time: now}
		}
		return Event{Kind: CardInserted, Reader: r.name, ATR: atr, Time: now}
	}
	removed := Event{Kind: CardRemoved, Reader: r.name, ATR: r.atr, Time: now}
	switch {
	case !r.present && present:
		evs = append(evs, inserted())
	case r.present && !present:
		evs = append(evs, removed)
	case r.present && present:
		// The event counter (upper 16 bits) counts insertions and removals:
		// if it moved while a card stayed present, the card was swapped
		// between two calls. A different ATR says the same.
		swapped := (!r.fresh && counter != r.counter) || (!r.mute && !mute && !bytes.Equal(atr, r.atr))
		switch {
		case swapped:
			evs = append(evs, removed, inserted())
		case mute != r.mute:
			evs = append(evs, inserted())
		}
	}
	r.present, r.mute, r.atr, r.counter, r.fresh = present, mute, atr, counter, false
	return evs, true, false
}

// publish copies the tracked readers into the snapshot Snapshot returns.
func (m *Monitor) publish() {
	snap := make([]ReaderStatus, len(m.readers))
	for i, r := range m.readers {
		snap[i] = ReaderStatus{Name: r.name, Present: r.present, ATR: r.atr, Mute: r.mute}
	}
	m.mu.Lock()
	m.snapshot = snap
	m.mu.Unlock()
}

func (m *Monitor) emit(evs []Event) {
	for _, ev := range evs {
		switch ev.Kind {
		case ServiceDown, ServiceUp: // logged where detected, with the cause
		case CardInserted, CardRemoved:
			m.log.Info(string(ev.Kind), zap.String("reader", ev.Reader), zap.String("atr", HexString(ev.ATR)))
		default:
			m.log.Info(string(ev.Kind), zap.String("reader", ev.Reader))
		}
		m.handler(ev)
	}
}

// listReaderNames lists the readers; no reader at all is an empty list, not an error.
func listReaderNames(c scardContext) ([]string, error) {
	names, err := c.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	return names, err
}

// backoff is a capped doubling delay.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits for d; it returns false if ctx was done first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
