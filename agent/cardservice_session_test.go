package agent

import (
	"context"
	"crypto"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// sessionEvents records the session_ended events of a service.
type sessionEvents struct {
	mu  sync.Mutex
	evs []wire.Event
}

func recordSessions(h *harness) *sessionEvents {
	r := &sessionEvents{}
	unsub := h.svc.Subscribe(func(ev wire.Event) {
		if ev.Kind == wire.EventSessionEnded {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		}
	})
	h.t.Cleanup(unsub)
	return r
}

func (r *sessionEvents) list() []wire.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Event(nil), r.evs...)
}

// waitN waits until n events arrived (then a little longer, to see more).
func (r *sessionEvents) waitN(t *testing.T, n int) []wire.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.list()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	evs := r.list()
	if len(evs) != n {
		t.Fatalf("%d session_ended events, want %d: %+v", len(evs), n, evs)
	}
	return evs
}

func removalHarness(t *testing.T, removal string, grace time.Duration, locks *atomic.Int32) *harness {
	return newHarness(t, func(s *CardService) {
		s.Removal, s.RemovalGrace = removal, grace
		s.LockDesktop = func(context.Context) error {
			locks.Add(1)
			return nil
		}
	})
}

func signIn(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(markerPIN)); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
}

const shortGrace = 150 * time.Millisecond

// TestRemovalNotify: pulling the card that signed in ends its session after
// the grace period with one session_ended naming the card; the desktop is
// not locked.
func TestRemovalNotify(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalNotify, shortGrace, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{Surname: "Removed", Forename: "Ruth", DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	id := h.svc.Status().Readers[0].Card.ID
	holder := h.svc.Status().Readers[0].Card.Holder
	signIn(t, h)
	start := time.Now()
	h.remove("R0")
	ev := rec.waitN(t, 1)[0]
	if d := time.Since(start); d < shortGrace {
		t.Errorf("session ended %v after the removal, before the grace period (%v)", d, shortGrace)
	}
	if ev.Reader != "R0" || ev.Session == nil || ev.Session.CardID != id || id == "" || ev.Session.Action != RemovalNotify ||
		ev.Session.Holder == nil || ev.Session.Holder.Name != holder.Name || ev.Card != nil {
		t.Errorf("session_ended %+v (session %+v), want reader R0, card %q, holder %q, action notify", ev, ev.Session, id, holder.Name)
	}
	if n := locks.Load(); n != 0 {
		t.Errorf("notify locked the desktop %d times", n)
	}
	// The session is over: putting the card back and pulling it again
	// ends nothing more; a new sign-in starts a new session.
	insertPIV(h, "R0", card)
	h.remove("R0")
	time.Sleep(2 * shortGrace)
	rec.waitN(t, 1)
	insertPIV(h, "R0", card)
	signIn(t, h)
	h.remove("R0")
	rec.waitN(t, 2)
}

// TestRemovalLock: "lock" ends the session and locks once after the grace
// period; the same card back within it cancels; another card does not.
func TestRemovalLock(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalLock, shortGrace, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	other := newCard(t, testpki.CardSpec{Surname: "Other", DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	signIn(t, h)

	// Reseated in time, even in another reader: the session goes on.
	h.remove("R0")
	insertPIV(h, "R1", card)
	time.Sleep(3 * shortGrace)
	if n := len(rec.list()); n != 0 || locks.Load() != 0 {
		t.Fatalf("card back within the grace period: %d session_ended, %d locks", n, locks.Load())
	}
	// Pulled again (from R1): a different card inserted meanwhile does not
	// keep the session.
	h.remove("R1")
	insertPIV(h, "R0", other)
	ev := rec.waitN(t, 1)[0]
	if ev.Reader != "R1" || ev.Session.Action != RemovalLock {
		t.Errorf("session_ended %+v %+v", ev, ev.Session)
	}
	deadline := time.Now().Add(5 * time.Second)
	for locks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := locks.Load(); n != 1 {
		t.Fatalf("desktop locked %d times, want 1", n)
	}
	// The other card never signed in: pulling it ends nothing.
	h.remove("R0")
	time.Sleep(3 * shortGrace)
	rec.waitN(t, 1)
	if n := locks.Load(); n != 1 {
		t.Errorf("desktop locked %d times after a card that never signed in left, want 1", n)
	}
}

// TestRemovalCopiedIDDoesNotKeepTheSession: a card that only copies the
// signed-in card's id (its CHUID GUID, which any reader reads and every
// page sees in status) is a different card: the session ends.
func TestRemovalCopiedIDDoesNotKeepTheSession(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalNotify, shortGrace, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	clone := newCard(t, testpki.CardSpec{Surname: "Clone", DaysLeft: 400, KeyIndex: 1}, func(c *vpiv.Config) { c.GUID = card.GUID() })
	insertPIV(h, "R0", card)
	signIn(t, h)
	h.remove("R0")
	insertPIV(h, "R1", clone)
	h.waitState("R1", func(c *wire.CardState) bool { return c != nil && c.State == wire.CardReady })
	if st := h.svc.Status(); st.Readers[1].Card == nil || st.Readers[1].Card.ID != hex.EncodeToString(card.GUID()) {
		t.Fatalf("the clone does not show the same id: %+v", st.Readers)
	}
	if ev := rec.waitN(t, 1)[0]; ev.Session == nil || ev.Session.CardID != hex.EncodeToString(card.GUID()) {
		t.Errorf("session_ended %+v", ev)
	}
}

// TestRemovalTwoCardsLockOnce: two cards that signed in, whose grace
// periods end together (held by a third card being read), end two sessions
// and lock the desktop once.
func TestRemovalTwoCardsLockOnce(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalLock, shortGrace, &locks)
	rec := recordSessions(h)
	a := newCard(t, testpki.CardSpec{Surname: "Alpha", DaysLeft: 400}, nil)
	insertPIV(h, "R0", a)
	signIn(t, h)
	h.remove("R0")
	b := newCard(t, testpki.CardSpec{Surname: "Beta", DaysLeft: 400}, nil)
	insertPIV(h, "R1", b)
	signIn(t, h) // the first reader's card is gone: b signs in
	insertPIV(h, "R0", a)
	gate := make(chan struct{})
	h.mu.Lock()
	h.openGate = gate
	h.mu.Unlock()
	h.remove("R0")
	h.remove("R1")
	third := newCard(t, testpki.CardSpec{Surname: "Gamma", DaysLeft: 400}, nil)
	h.insert("R2", third, third.ATR(), false)
	time.Sleep(3 * shortGrace)
	if n := len(rec.list()); n != 0 {
		t.Fatalf("%d session_ended while a card was being read", n)
	}
	close(gate)
	evs := rec.waitN(t, 2)
	if evs[0].Session.CardID == evs[1].Session.CardID {
		t.Errorf("both events name card %s", evs[0].Session.CardID)
	}
	time.Sleep(100 * time.Millisecond)
	if n := locks.Load(); n != 1 {
		t.Errorf("desktop locked %d times for two sessions ending together, want 1", n)
	}
}

// TestRemovalWaitsForCardBeingRead: when the grace period ends while a card
// is still being read, the decision waits for its id: the same card keeps
// its session.
func TestRemovalWaitsForCardBeingRead(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalLock, shortGrace, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	signIn(t, h)
	h.remove("R0")
	gate := make(chan struct{})
	h.mu.Lock()
	h.openGate = gate
	h.mu.Unlock()
	h.insert("R0", card, card.ATR(), false)
	time.Sleep(3 * shortGrace) // past the grace period, the card still being read
	if n := len(rec.list()); n != 0 {
		t.Fatalf("%d session_ended while the card was being read", n)
	}
	close(gate)
	h.waitState("R0", func(c *wire.CardState) bool { return c != nil && c.State == wire.CardReady })
	time.Sleep(2 * shortGrace)
	if n := len(rec.list()); n != 0 || locks.Load() != 0 {
		t.Fatalf("the same card read after the grace period: %d session_ended, %d locks", n, locks.Load())
	}
}

// TestRemovalNotHeldByLaterCards: once the grace period ended, only a card
// inserted by then (it may be the one that signed in) is waited for; a card
// inserted later, still being read, does not hold the session's end up.
func TestRemovalNotHeldByLaterCards(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalNotify, shortGrace, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	other := newCard(t, testpki.CardSpec{Surname: "Other", DaysLeft: 400, KeyIndex: 1}, nil)
	late := newCard(t, testpki.CardSpec{Surname: "Late", DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	signIn(t, h)
	h.remove("R0")
	early := make(chan struct{})
	h.mu.Lock()
	h.openGate = early
	h.mu.Unlock()
	h.insert("R1", other, other.ATR(), false) // being read when the grace period ends
	time.Sleep(3 * shortGrace)
	slow := make(chan struct{})
	defer close(slow)
	h.mu.Lock()
	h.openGate = slow
	h.mu.Unlock()
	h.insert("R2", late, late.ATR(), false) // inserted after it ended, read slowly
	time.Sleep(shortGrace)
	if n := len(rec.list()); n != 0 {
		t.Fatalf("%d session_ended while a card inserted in time was being read", n)
	}
	close(early)
	h.waitState("R1", func(c *wire.CardState) bool { return c != nil && c.State == wire.CardReady })
	rec.waitN(t, 1)
}

// TestRemovalNone: the default sends nothing new and never locks, and the
// PIN cache still ends on removal.
func TestRemovalNone(t *testing.T) {
	for _, removal := range []string{"", RemovalNone} {
		var locks atomic.Int32
		h := removalHarness(t, removal, 0, &locks)
		rec := recordSessions(h)
		card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
		insertPIV(h, "R0", card)
		signIn(t, h)
		h.remove("R0")
		time.Sleep(100 * time.Millisecond)
		rec.waitN(t, 0)
		if locks.Load() != 0 {
			t.Errorf("removal %q locked the desktop", removal)
		}
	}
}

// TestRemovalEndsPINCache: with the PIN cache on and a removal policy, a
// card reseated within the grace period keeps its session but not its
// cached PIN.
func TestRemovalEndsPINCache(t *testing.T) {
	var locks atomic.Int32
	h := newHarness(t, func(s *CardService) {
		s.PINCache, s.Removal, s.RemovalGrace = time.Minute, RemovalLock, time.Minute
		s.LockDesktop = func(context.Context) error { locks.Add(1); return nil }
	})
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := &confirmingPrompter{fakePrompter: answerPIN(markerPIN), allow: true}
	for range 2 {
		if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.requests()); n != 1 {
		t.Fatalf("%d PIN prompts before the removal, want 1 (the cache)", n)
	}
	h.remove("R0")
	insertPIV(h, "R0", card)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if n := len(p.requests()); n != 2 {
		t.Fatalf("%d PIN prompts after the card was reseated, want 2: the cache must end on removal", n)
	}
	if locks.Load() != 0 {
		t.Error("locked although the card came back within the grace period")
	}
}

// TestSigningIsNotASignIn: signing for a prescribing page starts no session.
func TestSigningIsNotASignIn(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalNotify, 0, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	if _, err := h.svc.SignDocuments(context.Background(), SignRequest{Origin: testOrigin, Hash: crypto.SHA256, Documents: [][]byte{[]byte("rx")}}, answerPIN(markerPIN)); err != nil {
		t.Fatalf("signing: %v", err)
	}
	h.remove("R0")
	time.Sleep(100 * time.Millisecond)
	rec.waitN(t, 0)
}

func TestUnknownRemovalPolicy(t *testing.T) {
	s := &CardService{Removal: "logoff", Watch: func(ctx context.Context, _ func(pcsc.Event)) error { <-ctx.Done(); return ctx.Err() }}
	if err := s.Serve(context.Background()); err == nil {
		t.Fatal("Serve with an unknown removal policy started")
	}
}

// TestRemovalWebEIDSignIn: a sign-in with a Web eID token is a sign-in too.
func TestRemovalWebEIDSignIn(t *testing.T) {
	var locks atomic.Int32
	h := removalHarness(t, RemovalNotify, 0, &locks)
	rec := recordSessions(h)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	if _, err := h.svc.AuthenticateWebEID(context.Background(), testOrigin, testChallenge, answerPIN(markerPIN)); err != nil {
		t.Fatalf("web-eid sign-in: %v", err)
	}
	h.remove("R0")
	rec.waitN(t, 1)
}
