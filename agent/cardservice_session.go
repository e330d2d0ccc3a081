package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/desktoplock"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// Removal policies (CardService.Removal): what the service does when a card
// that completed a sign-in is removed and not put back within the grace
// period. IT chooses one (session.removal, docs/config.md).
const (
	// RemovalNone does nothing new: the card's PIN cache ends, as on every
	// removal, and pages get card_removed only. "" means RemovalNone.
	RemovalNone = "none"
	// RemovalNotify sends every page a session_ended event naming the card.
	RemovalNotify = "notify"
	// RemovalLock sends session_ended and locks the desktop session once.
	RemovalLock = "lock"
)

// LockTimeout bounds one call of CardService.LockDesktop.
const LockTimeout = 15 * time.Second

// A sign-in session is a card that completed a sign-in (Authenticate or
// AuthenticateWebEID; signing for a prescribing page, a PIN change or an
// unblock is not a sign-in), from then until the card is removed and not
// read again, in any reader, within RemovalGrace. The card is known by its
// id (CardState.ID) and its authentication certificate, so a card reseated
// in the same or another reader keeps its session; a different card
// inserted meanwhile does not, nor does one that only copies the id (which
// the card states itself and every page sees in status). When the
// grace period ends while a card is still being read, the decision waits
// for that card's id. A later sign-in with the same card after the session
// ended starts a new one.
//
// Every card that signed in has its own session: with two cards in, each
// one's removal ends its own. The sessions live in memory only and end
// silently when the service stops.

// signInSession is one card's sign-in session. Guarded by CardService.mu.
type signInSession struct {
	cardID string
	cert   [sha256.Size]byte // the authentication certificate's SHA-256
	reader string            // where the card was last
	holder *certinfo.Holder
	// slot is the insertion the card is in; nil while it is out (grace).
	slot  *cardSlot
	timer *time.Timer
	// gen is bumped whenever a grace period starts or is cancelled, so a
	// timer that fired late does nothing.
	gen uint64
	// overdue: the grace period ended while a card was being read.
	overdue bool
	// overdueAt is the last insertion (CardService.slotSeq) when the grace
	// period ended: only cards inserted by then are waited for.
	overdueAt uint64
}

// checkRemoval checks the removal policy before Serve starts.
func (s *CardService) checkRemoval() error {
	switch s.Removal {
	case "", RemovalNone, RemovalNotify, RemovalLock:
		return nil
	}
	return fmt.Errorf("card service: unknown removal policy %q", s.Removal)
}

func (s *CardService) removalOn() bool {
	return s.Removal == RemovalNotify || s.Removal == RemovalLock
}

// signedIn records that the card in cs completed a sign-in.
func (s *CardService) signedIn(cs *cardSlot) {
	if !s.removalOn() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving || s.ctx.Err() != nil {
		return
	}
	i := slices.IndexFunc(s.sessions, func(x *signInSession) bool {
		return x.slot == cs || sameCard(x, cs)
	})
	var sess *signInSession
	if i >= 0 {
		sess = s.sessions[i]
	} else {
		sess = &signInSession{cardID: cs.id, cert: authCertHash(cs)}
		s.sessions = append(s.sessions, sess)
		s.Log.Info("sign-in session started", zap.String("card_id", cs.id), zap.String("reader", cs.reader), zap.String("removal", s.Removal))
	}
	sess.reader, sess.holder = cs.reader, holderOf(cs.certs)
	if cs.detached {
		// The card left while it signed. If it is already back and read
		// (another reader), the session is on that insertion; else its
		// grace period runs from now (unless it is running already).
		for _, r := range s.readers {
			if back := r.card; back != nil && back.openDone && !back.detached && sameCard(sess, back) {
				s.cancelGraceLocked(sess)
				sess.slot, sess.reader = back, back.reader
				return
			}
		}
		if sess.slot != nil || sess.timer == nil {
			sess.slot = nil
			s.startGraceLocked(sess)
		}
		return
	}
	s.cancelGraceLocked(sess)
	sess.slot = cs
}

// sameCard reports whether cs holds the card of sess: the same id and the
// same authentication certificate.
func sameCard(sess *signInSession, cs *cardSlot) bool {
	return cs.id != "" && sess.cardID == cs.id && sess.cert == authCertHash(cs)
}

// authCertHash is the SHA-256 of cs's authentication certificate (zero
// when it has none).
func authCertHash(cs *cardSlot) [sha256.Size]byte {
	for _, c := range cs.certs {
		if c.Key == pcsc.KeyAuthentication && c.Cert != nil {
			return sha256.Sum256(c.Cert.Raw)
		}
	}
	return [sha256.Size]byte{}
}

// cardLeftLocked starts the grace period of the session on cs, if any.
func (s *CardService) cardLeftLocked(cs *cardSlot) {
	if len(s.sessions) == 0 || s.ctx == nil || s.ctx.Err() != nil {
		return // nothing signed in, or the service is stopping
	}
	for _, sess := range s.sessions {
		if sess.slot == cs {
			sess.slot, sess.reader = nil, cs.reader
			s.startGraceLocked(sess)
		}
	}
	s.settleLocked()
}

// cardReadLocked is called once a newly inserted card is read (or left
// before it was): the same card back within the grace period keeps its
// session.
func (s *CardService) cardReadLocked(cs *cardSlot) {
	if len(s.sessions) == 0 {
		return
	}
	if !cs.detached && cs.id != "" {
		for _, sess := range s.sessions {
			if sess.slot == nil && sameCard(sess, cs) {
				s.cancelGraceLocked(sess)
				sess.slot, sess.reader = cs, cs.reader
				s.Log.Info("the card that signed in is back within the grace period: its session goes on",
					zap.String("card_id", cs.id), zap.String("reader", cs.reader))
			}
		}
	}
	s.settleLocked()
}

func (s *CardService) startGraceLocked(sess *signInSession) {
	sess.gen++
	gen := sess.gen
	sess.overdue = false
	if sess.timer != nil {
		sess.timer.Stop()
	}
	sess.timer = time.AfterFunc(s.RemovalGrace, func() { s.graceEnded(sess, gen) })
	s.Log.Info("the card that signed in was removed: its session ends unless it is back in time",
		zap.String("card_id", sess.cardID), zap.String("reader", sess.reader), zap.Duration("grace", s.RemovalGrace))
}

func (s *CardService) cancelGraceLocked(sess *signInSession) {
	if sess.timer != nil {
		sess.timer.Stop()
		sess.timer = nil
	}
	sess.gen++
	sess.overdue = false
}

func (s *CardService) graceEnded(sess *signInSession, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving || sess.gen != gen || !slices.Contains(s.sessions, sess) {
		return
	}
	sess.timer = nil
	sess.overdue, sess.overdueAt = true, s.slotSeq
	s.settleLocked()
}

// settleLocked ends the overdue sessions, unless a card that was inserted
// before a grace period ended is still being read (it may be one of them,
// back). A card inserted later does not hold the decision up.
func (s *CardService) settleLocked() {
	var before uint64 // the latest insertion an overdue session waits for
	for _, x := range s.sessions {
		if x.overdue {
			before = max(before, x.overdueAt)
		}
	}
	for _, r := range s.readers {
		if cs := r.card; cs != nil && !cs.openDone && !cs.detached && cs.seq <= before {
			return
		}
	}
	var ended []*signInSession
	s.sessions = slices.DeleteFunc(s.sessions, func(x *signInSession) bool {
		if x.overdue {
			ended = append(ended, x)
		}
		return x.overdue
	})
	for _, sess := range ended {
		s.endLocked(sess)
	}
	if len(ended) > 0 && s.Removal == RemovalLock {
		s.lockLocked()
	}
}

func (s *CardService) endLocked(sess *signInSession) {
	s.emitLocked(wire.Event{Kind: wire.EventSessionEnded, Reader: sess.reader,
		Session: &wire.SessionEnd{CardID: sess.cardID, Holder: sess.holder, Action: s.Removal}})
	fields := []zap.Field{zap.String("card_id", sess.cardID), zap.String("reader", sess.reader), zap.String("action", s.Removal)}
	if sess.holder != nil {
		fields = append(fields, zap.String("holder", sess.holder.Name))
	}
	s.Log.Info("sign-in session ended: the card that signed in was removed", fields...)
}

// lockLocked locks the desktop on a goroutine of its own, bounded by
// LockTimeout; sessions ending together lock it once.
func (s *CardService) lockLocked() {
	if s.locking {
		return
	}
	if s.LockDesktop == nil {
		s.Log.Error("removal policy \"lock\" but no way to lock the desktop is configured")
		return
	}
	s.locking = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), LockTimeout)
		defer cancel()
		start := time.Now()
		err := s.LockDesktop(ctx)
		s.mu.Lock()
		s.locking = false
		s.mu.Unlock()
		if errors.Is(err, desktoplock.ErrStillRunning) {
			s.Log.Info("the lock command is still running: it is left running, as a locker holding the screen does", zap.Duration("after", time.Since(start)))
			return
		}
		if err != nil {
			s.Log.Error("locking the desktop failed", zap.Error(err), zap.Duration("took", time.Since(start)))
			return
		}
		s.Log.Info("desktop locked", zap.Duration("took", time.Since(start)))
	}()
}

// stopSessionsLocked forgets every session as the service stops.
func (s *CardService) stopSessionsLocked() {
	for _, sess := range s.sessions {
		if sess.timer != nil {
			sess.timer.Stop()
		}
		sess.gen++
	}
	s.sessions = nil
}
