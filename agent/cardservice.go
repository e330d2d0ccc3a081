package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
)

// CardService is the agent's long-running core. It watches readers and cards
// (pcsc.Monitor), keeps one opened driver (pcsc.Card) per inserted card, and
// offers what the loopback API and the tray need: Status, Subscribe,
// Certificates and Authenticate.
//
// Card I/O never runs on the monitor's goroutine: an inserted card is opened
// on a goroutine of its own, and a removal only cancels and closes. Set the
// exported fields before Serve; they are not changed afterwards.
type CardService struct {
	Log     *zap.Logger
	Drivers drivers.Options
	Now     func() time.Time
	// Open connects to the card in a reader; pcsc.Open by default.
	Open func(ctx context.Context, reader string) (pcsc.Session, error)
	// Watch reports reader and card events to handler until ctx is done;
	// by default a pcsc.Monitor. handler must be called from one goroutine.
	Watch func(ctx context.Context, handler func(pcsc.Event)) error

	// PINPolicy checks the PIN's format before anything goes to the card;
	// nil leaves it to the driver's own check (which spends no try either).
	PINPolicy PINPolicy
	// PINCache, when positive, keeps a card's PIN in memory for that long
	// after a successful authentication so the next ones need no prompt. The
	// cache ends when the card is removed. Zero (the default) asks for the PIN
	// for every authentication.
	PINCache time.Duration
	// ExpiryWarningDays is the window in which a certificate is "expiring"
	// (expiry.DefaultWarnDays when zero).
	ExpiryWarningDays int
	// RenewalURL is the active environment's certificate renewal page,
	// reported in Status.
	RenewalURL string
	// PromptTimeout is passed to the prompter (prompt.Request.Timeout); zero
	// leaves the prompter's default.
	PromptTimeout time.Duration

	// Removal is what happens when a card that completed a sign-in is
	// removed and not read again within RemovalGrace: RemovalNone (or ""),
	// RemovalNotify or RemovalLock (cardservice_session.go).
	Removal      string
	RemovalGrace time.Duration
	// LockDesktop locks the desktop session (RemovalLock). It runs on a
	// goroutine of its own with a context bounded by LockTimeout.
	LockDesktop func(ctx context.Context) error

	initOnce sync.Once

	mu      sync.Mutex
	serving bool
	ctx     context.Context // Serve's context, the parent of every card's
	service wire.ServiceState
	readers []*readerEntry
	subs    map[uint64]func(wire.Event)
	nextSub uint64
	events  *queue[wire.Event]
	wg      sync.WaitGroup // card openers and closers
	// activity is the signing in progress (nil: none), for the tray.
	activity *Activity
	// sessions are the cards that signed in (RemovalNotify, RemovalLock).
	sessions []*signInSession
	locking  bool // a LockDesktop call is running
	// operating is held by the PIN operation in flight (sign-in, signing,
	// PIN change or unblock), whichever card it uses: see exclusive.
	operating atomic.Bool
	slotSeq   uint64 // the last cardSlot.seq given

	dispatchMu sync.Mutex // held while one event is delivered
}

// PINPolicy checks a PIN's format locally. Its error is shown to the user in
// the prompt ("Retry"), so it must not contain the PIN.
type PINPolicy interface {
	Check(pin []byte) error
}

type readerEntry struct {
	name string
	card *cardSlot // nil when empty
}

// cardSlot is one insertion of a card. Fields below mu-guarded are written
// under CardService.mu.
type cardSlot struct {
	reader string
	atr    []byte
	// ctx is cancelled (cause pcsc.ErrCardRemoved) when the card leaves the
	// reader or the service stops: it cancels prompts and card operations.
	ctx    context.Context
	cancel context.CancelCauseFunc
	opened chan struct{} // closed when reading the card finished

	// Guarded by CardService.mu.
	seq      uint64 // insertion order (CardService.slotSeq)
	id       string // the card's id, once read
	state    string
	openDone bool
	detached bool
	sess     pcsc.Session
	card     pcsc.Card
	kind     pcsc.Kind
	typeName string
	hint     string
	// unusableKey names the authentication key when the driver cannot sign
	// with it (state unsupported).
	unusableKey string
	certs       []pcsc.Certificate
	pin         *wire.PINReport
	maxTries    int
	cache       pinCache
}

func (s *CardService) init() {
	s.initOnce.Do(func() {
		if s.Log == nil {
			s.Log = zap.NewNop()
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Open == nil {
			log := s.Log.Named("pcsc")
			s.Open = func(ctx context.Context, reader string) (pcsc.Session, error) {
				c, err := pcsc.Open(ctx, log, reader)
				if err != nil {
					return nil, err // not a typed nil *pcsc.Conn
				}
				return c, nil
			}
		}
		if s.Watch == nil {
			log := s.Log.Named("monitor")
			s.Watch = func(ctx context.Context, h func(pcsc.Event)) error {
				return pcsc.NewMonitor(log, h).Serve(ctx)
			}
		}
		if s.ExpiryWarningDays <= 0 {
			s.ExpiryWarningDays = expiry.DefaultWarnDays
		}
		s.events = newQueue[wire.Event]()
		s.subs = map[uint64]func(wire.Event){}
		s.service = wire.ServiceStopped
	})
}

// Serve watches readers and cards until ctx is cancelled. Every goroutine it
// started has ended, and every card is closed, when it returns.
func (s *CardService) Serve(ctx context.Context) error {
	s.init()
	if err := s.checkRemoval(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("card service is already serving")
	}
	s.serving, s.ctx, s.service = true, ctx, wire.ServiceUp
	s.mu.Unlock()

	dctx, dcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.dispatch(dctx)
	}()

	err := s.Watch(ctx, s.onEvent)

	s.mu.Lock()
	for _, r := range s.readers {
		if r.card != nil {
			s.detachLocked(r.card, time.Time{})
		}
	}
	s.stopSessionsLocked()
	s.readers, s.serving, s.service = nil, false, wire.ServiceStopped
	s.mu.Unlock()
	s.wg.Wait()
	dcancel()
	<-done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// dispatch delivers events to subscribers, in order, on its own goroutine.
func (s *CardService) dispatch(ctx context.Context) {
	for {
		ev, ok := s.events.pop(ctx)
		if !ok {
			return
		}
		s.dispatchMu.Lock()
		s.mu.Lock()
		fns := make([]func(wire.Event), 0, len(s.subs))
		for _, fn := range s.subs {
			fns = append(fns, fn)
		}
		s.mu.Unlock()
		for _, fn := range fns {
			fn(ev)
		}
		s.dispatchMu.Unlock()
	}
}

// Subscribe calls fn for every event from now on, in order, from one
// goroutine. fn must not block; it may call Status. The returned function
// unsubscribes: once it returns, fn is not called again (do not call it
// from inside fn).
func (s *CardService) Subscribe(fn func(wire.Event)) (unsubscribe func()) {
	s.init()
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
		s.dispatchMu.Lock() // wait for a delivery in progress
		s.dispatchMu.Unlock()
	}
}

func (s *CardService) emitLocked(ev wire.Event) {
	if ev.Time.IsZero() {
		ev.Time = s.Now()
	}
	s.events.push(ev)
}

// onEvent runs on the monitor's goroutine: state changes only, no card I/O.
func (s *CardService) onEvent(ev pcsc.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Kind {
	case pcsc.ReaderAdded:
		s.service = wire.ServiceUp
		if s.reader(ev.Reader) == nil {
			s.readers = append(s.readers, &readerEntry{name: ev.Reader})
			s.emitLocked(wire.Event{Kind: wire.EventReaderAdded, Reader: ev.Reader, Time: ev.Time})
		}
	case pcsc.ReaderRemoved:
		for i, r := range s.readers {
			if r.name == ev.Reader {
				if r.card != nil {
					s.detachLocked(r.card, ev.Time)
				}
				s.readers = append(s.readers[:i], s.readers[i+1:]...)
				s.emitLocked(wire.Event{Kind: wire.EventReaderRemoved, Reader: ev.Reader, Time: ev.Time})
				break
			}
		}
	case pcsc.CardInserted, pcsc.CardMute:
		s.service = wire.ServiceUp
		r := s.reader(ev.Reader)
		if r == nil {
			r = &readerEntry{name: ev.Reader}
			s.readers = append(s.readers, r)
		}
		if r.card != nil {
			s.detachLocked(r.card, ev.Time)
		}
		cs := s.newSlot(ev.Reader, ev.ATR)
		s.slotSeq++
		cs.seq = s.slotSeq
		r.card = cs
		if ev.Kind == pcsc.CardMute {
			cs.state, cs.openDone = wire.CardMute, true
			cs.kind, cs.typeName, cs.hint = pcsc.KindUnknown, "card does not respond", hintMute
			close(cs.opened)
			s.emitLocked(wire.Event{Kind: wire.EventCardInserted, Reader: ev.Reader, Card: s.cardStateLocked(cs, s.Now()), Time: ev.Time})
			return
		}
		s.emitLocked(wire.Event{Kind: wire.EventCardReading, Reader: ev.Reader, Card: s.cardStateLocked(cs, s.Now()), Time: ev.Time})
		s.wg.Add(1)
		go s.openCard(cs)
	case pcsc.CardRemoved:
		if r := s.reader(ev.Reader); r != nil && r.card != nil {
			s.detachLocked(r.card, ev.Time)
			r.card = nil
		}
	case pcsc.ServiceDown:
		for _, r := range s.readers {
			if r.card != nil {
				s.detachLocked(r.card, ev.Time)
			}
		}
		s.readers = nil
		s.service = wire.ServiceDown
		s.emitLocked(wire.Event{Kind: wire.EventServiceDown, Time: ev.Time})
	case pcsc.ServiceUp:
		s.service = wire.ServiceUp
		s.emitLocked(wire.Event{Kind: wire.EventServiceUp, Time: ev.Time})
	}
}

func (s *CardService) reader(name string) *readerEntry {
	for _, r := range s.readers {
		if r.name == name {
			return r
		}
	}
	return nil
}

func (s *CardService) newSlot(reader string, atr []byte) *cardSlot {
	ctx, cancel := context.WithCancelCause(s.ctx)
	return &cardSlot{reader: reader, atr: atr, ctx: ctx, cancel: cancel, opened: make(chan struct{}), state: wire.CardReading, kind: pcsc.KindUnknown, maxTries: wire.TriesUnknown}
}

// detachLocked ends a card's insertion: its context is cancelled (closing a
// PIN prompt), its PIN cache zeroed, and its connection closed off the
// caller's goroutine (by the opener when it is still reading the card).
//
// at is the time of the PC/SC event that ended it (zero: now), so that
// card_removed is not later than the reader_removed or service_down the same
// PC/SC event causes.
func (s *CardService) detachLocked(cs *cardSlot, at time.Time) {
	if cs.detached {
		return
	}
	cs.detached = true
	cs.cancel(pcsc.ErrCardRemoved)
	cs.cache.clear()
	s.emitLocked(wire.Event{Kind: wire.EventCardRemoved, Reader: cs.reader, Time: at})
	s.cardLeftLocked(cs)
	if cs.openDone {
		s.closeLater(cs.card, cs.sess)
		cs.card, cs.sess = nil, nil
	}
}

// closeLater closes a card (which closes its session) or a bare session on
// a goroutine: Close waits for a transaction in progress.
func (s *CardService) closeLater(card pcsc.Card, sess pcsc.Session) {
	if card == nil && sess == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if card != nil {
			_ = card.Close()
			return
		}
		_ = sess.Close()
	}()
}

// openCard reads a newly inserted card: identification, driver, certificates
// and PIN status. It runs on its own goroutine.
func (s *CardService) openCard(cs *cardSlot) {
	defer s.wg.Done()
	defer close(cs.opened)
	log := s.Log.With(zap.String("reader", cs.reader))
	ctx := cs.ctx

	var (
		card   pcsc.Card
		id     pcsc.IdentifyResult
		certs  []pcsc.Certificate
		pinSt  *wire.PINReport
		state  = wire.CardReady
		hint   string
		fields []zap.Field
		// unusableKey names an authentication key the driver cannot sign with.
		unusableKey string
	)
	sess, err := s.Open(ctx, cs.reader)
	if err != nil {
		// A failed Open may return a typed nil (pcsc.Open's *Conn) in the
		// interface: it must not be closed later.
		sess = nil
	} else {
		card, id, err = drivers.Open(ctx, s.Log, sess, s.Drivers)
		if err != nil {
			_ = sess.Close()
			sess = nil
		}
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// Removed while being read: nothing to report.
	case id.Kind == pcsc.KindRetired:
		state, hint = wire.CardUnsupported, hintRetired
	case errors.Is(err, pcsc.ErrUnsupportedCard):
		state, hint = wire.CardUnsupported, hintUnsupported
	case errors.Is(err, pcsc.ErrCardUnresponsive):
		state, hint = wire.CardMute, hintMute
	default:
		state, hint = wire.CardFailed, "The card could not be read: take it out and insert it again."
	}
	if err != nil && ctx.Err() == nil {
		log.Warn("card not usable", zap.String("type", id.Name), zap.Error(err))
	}
	if card != nil {
		info := card.Info()
		fields = append(fields, zap.String("type", id.Name), zap.String("driver", info.Driver), zap.String("card_id", info.ID))
		if certs, err = card.Certificates(ctx); err != nil {
			log.Warn("reading certificates", zap.Error(err))
			hint = "The card's certificates could not be read: take it out and insert it again."
		} else if kt := unusableSignInKey(card, certs); kt != "" {
			// Said now, not after a PIN prompt.
			state, hint = wire.CardUnsupported, unsupportedKeyHint(kt)
			unusableKey = kt
			log.Warn("sign-in key not usable", zap.String("key_type", kt))
		}
		st, err := card.PINStatus(ctx)
		switch {
		case err == nil:
			pinSt = &wire.PINReport{TriesLeft: st.Retries, Blocked: st.Blocked}
		case errors.Is(err, pcsc.ErrPINBlocked):
			pinSt = &wire.PINReport{TriesLeft: 0, Blocked: true}
		default:
			log.Warn("reading PIN status", zap.Error(err))
		}
		if pinSt != nil {
			fields = append(fields, zap.Int("pin_tries_left", pinSt.TriesLeft), zap.Bool("pin_blocked", pinSt.Blocked))
		}
	}

	s.mu.Lock()
	cs.openDone = true
	if cs.detached {
		s.cardReadLocked(cs)
		s.mu.Unlock()
		s.closeLater(card, sess)
		return
	}
	cs.card, cs.sess, cs.state, cs.hint, cs.certs, cs.pin = card, sess, state, hint, certs, pinSt
	cs.unusableKey = unusableKey
	if id.Kind != "" {
		cs.kind, cs.typeName = id.Kind, cardName(id, certs)
	}
	if cs.typeName == "" {
		cs.typeName = "unknown card"
	}
	if pinSt != nil {
		cs.maxTries = pinSt.TriesLeft
	}
	if card != nil {
		cs.id = card.Info().ID
	}
	st := s.cardStateLocked(cs, s.Now())
	s.emitLocked(wire.Event{Kind: wire.EventCardInserted, Reader: cs.reader, Card: st})
	s.cardReadLocked(cs)
	s.mu.Unlock()
	if card != nil {
		if st.Holder != nil {
			fields = append(fields, zap.String("holder", st.Holder.Name))
		}
		log.Info("card ready", fields...)
	}
}

// Status returns readers and cards as last read (no card I/O).
func (s *CardService) Status() wire.Status {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	st := wire.Status{Service: s.service, ExpiryWarningDays: s.ExpiryWarningDays, RenewalURL: s.RenewalURL, Readers: make([]wire.ReaderStatus, 0, len(s.readers))}
	for _, r := range s.readers {
		rs := wire.ReaderStatus{Name: r.name}
		if r.card != nil {
			rs.Card = s.cardStateLocked(r.card, now)
		}
		st.Readers = append(st.Readers, rs)
	}
	return st
}

func (s *CardService) cardStateLocked(cs *cardSlot, now time.Time) *wire.CardState {
	st := &wire.CardState{
		State:        cs.state,
		ATR:          pcsc.HexString(cs.atr),
		Kind:         string(cs.kind),
		Type:         cs.typeName,
		Hint:         cs.hint,
		Certificates: s.summaries(cs.certs, now),
	}
	if cs.card != nil {
		st.ID = cs.card.Info().ID
	}
	if cs.pin != nil {
		p := *cs.pin
		st.PIN = &p
	}
	st.Holder = holderOf(cs.certs)
	return st
}

func (s *CardService) summaries(certs []pcsc.Certificate, now time.Time) []wire.CertificateStatus {
	out := make([]wire.CertificateStatus, 0, len(certs))
	for _, c := range certs {
		sum := certinfo.Summarise(string(c.Key), c.Cert, now)
		out = append(out, wire.CertificateStatus{Summary: sum, Expiry: expiry.Policy{WarnDays: s.ExpiryWarningDays}.State(sum)})
	}
	return out
}

// holderOf names the holder from the authentication certificate (else the signature one).
func holderOf(certs []pcsc.Certificate) *certinfo.Holder {
	var h *certinfo.Holder
	for _, c := range certs {
		if c.Key == pcsc.KeyAuthentication || (h == nil && c.Key == pcsc.KeySignature) {
			x := certinfo.HolderOf(c.Cert)
			h = &x
		}
	}
	return h
}
