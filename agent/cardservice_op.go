package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"

	"github.com/cardagent/cardagent/pcsc"
)

// The steps every PIN-protected card operation shares (sign-in, signing for
// a prescribing page), each decided once here.

// exclusive makes PIN operations (sign-in, signing, PIN change, unblock)
// one at a time on this desktop, whichever card each would use: a second
// one gets ErrBusy at once, never queued behind a prompt. So a page cannot
// open a card choice or a PIN prompt beside another page's, and the user
// never has two of the agent's prompts to tell apart. release ends it.
func (s *CardService) exclusive() (release func(), err error) {
	if !s.operating.CompareAndSwap(false, true) {
		return nil, ErrBusy
	}
	return func() { s.operating.Store(false) }, nil
}

// onCard runs op on the card pick chooses for sel, one operation at a time
// (exclusive). reader is set to the card's reader. When the
// card left during op, whatever failed is reported as the card's removal;
// a card that stopped answering is marked mute.
func (s *CardService) onCard(ctx context.Context, sel selection, reader *string, op func(pk picked) error) error {
	release, err := s.exclusive()
	if err != nil {
		return err
	}
	defer release()
	pk, err := s.pick(ctx, sel)
	if err != nil {
		return err
	}
	cs := pk.slot
	*reader = cs.reader
	err = op(pk)
	if err != nil && cs.ctx.Err() != nil {
		return Classify(context.Cause(cs.ctx))
	}
	if errors.Is(err, pcsc.ErrNoAnswer) {
		s.markMute(cs)
	}
	return err
}

// cardCertificates returns cs's card, its certificates (cached by the
// driver: no APDU) and the one for key ref (nil when the card has none).
func (s *CardService) cardCertificates(ctx context.Context, cs *cardSlot, ref pcsc.KeyRef) (pcsc.Card, []pcsc.Certificate, *pcsc.Certificate, error) {
	card := s.cardOf(cs)
	if card == nil {
		return nil, nil, nil, Classify(pcsc.ErrCardRemoved)
	}
	certs, err := card.Certificates(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var found *pcsc.Certificate
	for i := range certs {
		if certs[i].Key == ref {
			found = &certs[i]
		}
	}
	return card, certs, found, nil
}

// pinStatus reads the PIN's tries left (without spending one) for the
// prompt and records them; a blocked PIN ends the operation before any
// prompt.
func (s *CardService) pinStatus(ctx context.Context, cs *cardSlot, card pcsc.Card) (pcsc.PINStatus, error) {
	st, err := card.PINStatus(ctx)
	if err != nil {
		if errors.Is(err, pcsc.ErrPINBlocked) {
			s.setPIN(cs, 0, false)
		}
		return st, cardFailure(err)
	}
	s.setPIN(cs, st.Retries, false)
	if st.Blocked {
		return st, Classify(pcsc.ErrPINBlocked)
	}
	return st, nil
}

// cardGone says why nothing may be sent to the card after a prompt: the
// card left, or the request went away, while the prompt was open.
func cardGone(ctx context.Context, cs *cardSlot) error {
	if cs.ctx.Err() != nil {
		return context.Cause(cs.ctx)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// signWith has key sign digest in ctx's transaction. A refused PIN updates the tries left (and drops the PIN cache): a
// wrong PIN, or the try that blocks it (real cards answer 6983 then, not
// 63C0). It is never retried.
func (s *CardService) signWith(ctx context.Context, cs *cardSlot, key pcsc.Signer, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := key.SignContext(ctx, rand.Reader, digest, opts)
	if err != nil {
		var auth *pcsc.AuthError
		switch {
		case errors.As(err, &auth) && !auth.PUK:
			s.setPIN(cs, auth.Retries, false)
			s.dropCachedPIN(cs)
		case errors.Is(err, pcsc.ErrPINBlocked):
			s.setPIN(cs, 0, false)
			s.dropCachedPIN(cs)
		}
		return nil, cardFailure(err)
	}
	return sig, nil
}
