package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// Codes of the PIN management operations (ChangePIN, UnblockPIN), besides
// the sign-in codes. They reach the tray, never a web page.
const (
	CodeWrongPUK   wire.Code = "wrong_puk"   // the card refused the PUK; TriesLeft says how many PUK tries are left
	CodePUKBlocked wire.Code = "puk_blocked" // the PUK is blocked: only a Registration Authority can help
)

// maxSecretPrompts bounds how often one secret is asked again after a format
// error or a mismatch (nothing was sent to the card for those).
const maxSecretPrompts = 3

// ChangePIN changes the PIN of the card sign-in would use. It asks p for
// the current PIN, the new PIN and the new PIN again. The PIN policy checks
// both PINs, and the two new entries must match and differ from the current
// PIN, before anything is sent to the card: such a mistake re-prompts with
// the reason and costs no try. Then one CHANGE REFERENCE DATA goes to the
// card; it is never retried. A blocked PIN stops before any prompt.
//
// Errors are *Error values whose Message says in plain words what happened
// and what to do (tries left included); every PIN buffer is zeroed.
func (s *CardService) ChangePIN(ctx context.Context, p prompt.Prompter) error {
	return s.managePIN(ctx, p, false)
}

// UnblockPIN sets a new PIN with the PUK (unblocking code) and resets the
// PIN's retry counter. It asks p for the PUK, the new PIN and the new PIN
// again, with the same local checks as ChangePIN, then sends one RESET
// RETRY COUNTER, never retried.
func (s *CardService) UnblockPIN(ctx context.Context, p prompt.Prompter) error {
	return s.managePIN(ctx, p, true)
}

func (s *CardService) managePIN(ctx context.Context, p prompt.Prompter, unblock bool) (err error) {
	s.init()
	op := "change PIN"
	if unblock {
		op = "unblock PIN"
	}
	log := s.Log.With(zap.String("operation", op))
	reader := ""
	defer func() {
		if err != nil {
			e := pinManagementError(err, unblock)
			err = e
			log.Info(op+" failed", zap.String("reader", reader), zap.String("code", string(e.Code)),
				zap.Int("tries_left", e.TriesLeft), zap.NamedError("cause", e.Err))
			return
		}
		log.Info(op+" done", zap.String("reader", reader))
	}()
	if p == nil {
		return ErrPromptUnavailable
	}
	purpose := "change your PIN"
	if unblock {
		purpose = "unblock your card"
	}
	sel := selectionFor("", "", purpose, p)
	sel.blockedOK = unblock // an unblock is for a blocked card; a blocked card's PIN cannot be changed
	return s.onCard(ctx, sel, &reader, func(pk picked) error { return s.managePINOn(ctx, pk.slot, p, unblock) })
}

func (s *CardService) managePINOn(ctx context.Context, cs *cardSlot, p prompt.Prompter, unblock bool) error {
	card := s.cardOf(cs)
	if card == nil {
		return Classify(pcsc.ErrCardRemoved)
	}
	st, err := card.PINStatus(ctx)
	switch {
	case errors.Is(err, pcsc.ErrPINBlocked):
		st = pcsc.PINStatus{Retries: 0, Blocked: true}
	case err != nil:
		return err
	}
	s.setPIN(cs, st.Retries, false)
	if st.Blocked && !unblock {
		return &Error{Code: wire.CodePINBlocked, TriesLeft: 0,
			Message: "Your PIN is blocked, so it cannot be changed. Unblock the card first (Unblock card... with your PUK), or contact your Registration Authority."}
	}

	base := prompt.Request{CardType: s.typeOf(cs), TriesLeft: wire.TriesUnknown, Timeout: s.PromptTimeout}
	if certs, err := card.Certificates(ctx); err == nil {
		if h := holderOf(certs); h != nil {
			base.Holder = h.Name
		}
	}

	// First secret: the current PIN, or the PUK.
	first := base
	first.Purpose, first.Secret, first.TriesLeft = "change your PIN", prompt.SecretPIN, st.Retries
	check := s.checkPIN
	if unblock {
		first.Purpose, first.Secret, first.TriesLeft = "unblock your card", prompt.SecretPUK, wire.TriesUnknown
		check = checkPUK
	}
	old, err := s.askSecret(ctx, cs, p, first, check)
	if err != nil {
		return err
	}
	defer prompt.Zero(old)

	newPIN, err := s.askNewPIN(ctx, cs, p, base, old, unblock)
	if err != nil {
		return err
	}
	defer prompt.Zero(newPIN)

	// The card may have left, or the caller gone, while a prompt was open.
	if cs.ctx.Err() != nil {
		return context.Cause(cs.ctx)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	s.dropCachedPIN(cs)
	if unblock {
		err = card.UnblockPIN(ctx, old, newPIN)
	} else {
		err = card.ChangePIN(ctx, old, newPIN)
	}
	var auth *pcsc.AuthError
	switch {
	case err == nil:
	case errors.As(err, &auth) && !auth.PUK:
		s.setPIN(cs, auth.Retries, false)
		return err
	case errors.Is(err, pcsc.ErrPINBlocked):
		s.setPIN(cs, 0, false)
		return err
	default:
		return err
	}
	// The counter is reset: read it back (no try is spent) so status is right.
	if st, serr := card.PINStatus(ctx); serr == nil {
		s.setPIN(cs, st.Retries, false)
	}
	return nil
}

// askNewPIN asks for the new PIN and then again, until both entries match,
// pass the policy and (when changing) differ from the current PIN.
func (s *CardService) askNewPIN(ctx context.Context, cs *cardSlot, p prompt.Prompter, base prompt.Request, old []byte, unblock bool) ([]byte, error) {
	req := base
	req.Purpose = "change your PIN"
	if unblock {
		req.Purpose = "unblock your card"
	}
	check := func(pin []byte) error {
		if err := s.checkPIN(pin); err != nil {
			return err
		}
		if !unblock && bytes.Equal(pin, old) {
			return errors.New("the new PIN must be different from the current one")
		}
		return nil
	}
	for attempt := 1; ; attempt++ {
		req.Secret = prompt.SecretNewPIN
		newPIN, err := s.askSecret(ctx, cs, p, req, check)
		if err != nil {
			return nil, err
		}
		again := req
		again.Secret, again.Retry = prompt.SecretNewPINAgain, ""
		confirm, err := s.askSecret(ctx, cs, p, again, func([]byte) error { return nil })
		if err != nil {
			prompt.Zero(newPIN)
			return nil, err
		}
		same := bytes.Equal(newPIN, confirm)
		prompt.Zero(confirm)
		if same {
			return newPIN, nil
		}
		prompt.Zero(newPIN)
		if attempt >= maxSecretPrompts {
			return nil, NewError(wire.CodePINFormat,
				"The two new PINs did not match. Nothing was sent to the card and your PIN is unchanged.", nil)
		}
		req.Retry = "The two new PINs did not match. Nothing was sent to the card; please choose the new PIN again."
	}
}

// askSecret shows one prompt, closed when the card leaves or ctx ends. A
// secret check refuses is never returned: the prompt is shown again with the
// reason (maxSecretPrompts times in all). Nothing reaches the card here.
func (s *CardService) askSecret(ctx context.Context, cs *cardSlot, p prompt.Prompter, req prompt.Request, check func([]byte) error) ([]byte, error) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(cs.ctx, func() { cancel(pcsc.ErrCardRemoved) })
	defer stop()
	for attempt := 1; ; attempt++ {
		secret, err := p.PIN(pctx, req)
		if cs.ctx.Err() != nil {
			prompt.Zero(secret)
			return nil, context.Cause(cs.ctx)
		}
		if err != nil {
			prompt.Zero(secret)
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
		ferr := check(secret)
		if ferr == nil {
			return secret, nil
		}
		prompt.Zero(secret)
		what := strings.TrimSuffix(req.Secret.Label(), ":")
		why := ferr.Error()
		if um, ok := ferr.(interface{ UserMessage() string }); ok && um.UserMessage() != "" {
			why = um.UserMessage()
		}
		why = strings.ToUpper(why[:1]) + why[1:]
		if !strings.HasSuffix(why, ".") {
			why += "."
		}
		if attempt >= maxSecretPrompts {
			return nil, NewError(wire.CodePINFormat,
				fmt.Sprintf("That %s cannot be right. %s Nothing was sent to the card.", what, why), ferr)
		}
		req.Retry = fmt.Sprintf("That %s cannot be right. %s Nothing was sent to the card; please enter it again.", what, why)
	}
}

// checkPUK refuses what cannot be a PUK before it reaches the card (the
// driver checks the exact length; that costs no try either).
func checkPUK(puk []byte) error {
	if len(puk) == 0 {
		return errors.New("no PUK was entered")
	}
	for _, b := range puk {
		if b <= ' ' || b >= 0x7f {
			return errors.New("a PUK has only letters and digits, without spaces")
		}
	}
	return nil
}

// pinManagementError turns a failure of ChangePIN or UnblockPIN into an
// *Error whose Message tells the user, in plain words, what happened, how
// many tries are left and what to do next.
func pinManagementError(err error, unblock bool) *Error {
	unchanged := "Your PIN has not been changed."
	if unblock {
		unchanged = "The card is still blocked."
	}
	mk := func(code wire.Code, tries int, msg string) *Error {
		return &Error{Code: code, Message: msg, TriesLeft: tries, Err: err}
	}
	var auth *pcsc.AuthError
	var e *Error
	switch {
	case errors.As(err, &auth) && auth.PUK:
		switch {
		case auth.Retries == 0:
			return mk(CodePUKBlocked, 0, "The PUK was wrong and is now blocked. Only your Registration Authority can unblock the card now.")
		case auth.Retries < 0:
			return mk(CodeWrongPUK, wire.TriesUnknown, "The PUK was wrong. "+unchanged)
		}
		return mk(CodeWrongPUK, auth.Retries, "The PUK was wrong. "+unchanged+" "+prompt.PUKTriesLeft(auth.Retries))
	case errors.Is(err, pcsc.ErrPUKBlocked):
		return mk(CodePUKBlocked, 0, "The PUK is blocked. Only your Registration Authority can unblock the card now.")
	case errors.As(err, &auth):
		switch {
		case auth.Retries == 0:
			return mk(wire.CodePINBlocked, 0, "The current PIN was wrong and the card is now blocked. Unblock it with your PUK (Unblock card...) or contact your Registration Authority.")
		case auth.Retries < 0:
			return mk(wire.CodeWrongPIN, wire.TriesUnknown, "The current PIN was wrong. "+unchanged)
		}
		return mk(wire.CodeWrongPIN, auth.Retries, "The current PIN was wrong. "+unchanged+" "+prompt.TriesLeft(auth.Retries))
	case errors.As(err, &e):
		if e.Code == wire.CodePINBlocked || e.Code == wire.CodePINFormat {
			return e // already in words
		}
	case errors.Is(err, pcsc.ErrPINBlocked):
		return mk(wire.CodePINBlocked, 0, "Your PIN is blocked. Unblock the card with your PUK (Unblock card...) or contact your Registration Authority.")
	case errors.Is(err, pcsc.ErrPINFormat):
		return mk(wire.CodePINFormat, wire.TriesUnknown, "The card did not accept that new PIN. Nothing was changed and no try was spent: choose another PIN.")
	}
	c := Classify(err)
	msg := c.Message
	switch c.Code {
	case wire.CodeUserCancelled:
		msg = "Cancelled. " + unchanged
	case wire.CodeTimeout:
		msg = "The PIN entry timed out. " + unchanged
	case wire.CodeCardRemoved:
		msg = "The card was removed. " + unchanged + " Insert it and try again."
	case wire.CodeNoCard:
		msg = "No smartcard is inserted. Insert your card and try again."
	case wire.CodeBusy:
		msg = "The card is busy with another operation. Try again in a moment."
	case wire.CodePromptUnavailable:
		msg = "No PIN prompt can be shown on this desktop. " + unchanged
	case wire.CodeServiceUnavailable:
		msg = "The smart-card service is not running. " + unchanged
	case wire.CodeUnsupportedCard:
		msg = "This card is not supported. " + unchanged
	default:
		msg = "The card did not complete the operation. " + unchanged + " Take the card out, insert it again and retry."
	}
	return &Error{Code: c.Code, Message: msg, TriesLeft: c.TriesLeft, Err: c.Err}
}
