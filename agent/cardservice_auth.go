package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/version"
)

// Challenge limits: base64url without padding of at least 32 random bytes
// (43 characters), and no longer than 256 characters.
const (
	MinChallengeBytes = 32
	MaxChallengeChars = 256
)

// CheckChallenge checks a challenge's format (ErrBadChallenge): only
// base64url characters (Go's own decoder would skip CR and LF, and the
// signature covers the challenge's text), no padding, at least
// MinChallengeBytes decoded, at most MaxChallengeChars.
func CheckChallenge(c string) error {
	if len(c) > MaxChallengeChars {
		return ErrBadChallenge
	}
	b, err := token.DecodeBinary(c)
	if err != nil || len(b) < MinChallengeBytes {
		return ErrBadChallenge
	}
	return nil
}

// Web eID's challenge nonce limits: its reference application takes 44 to
// 128 characters (32 bytes or more in standard base64); 43 is accepted too,
// for the base64url challenges of 32 bytes agent/token issues.
const (
	MinWebEIDNonceChars = 43
	MaxWebEIDNonceChars = 128
)

// ErrBadWebEIDNonce is a Web eID challenge nonce the agent refuses.
var ErrBadWebEIDNonce = NewError(wire.CodeBadRequest, "a web-eid:1.0 challenge nonce must be 43 to 128 base64 characters", nil)

// CheckWebEIDNonce checks a Web eID challenge nonce: 43 to 128 characters of
// the base64 alphabets (A-Z a-z 0-9 + / - _ and = padding), nothing else (no
// line breaks). It is signed as text, never decoded.
func CheckWebEIDNonce(n string) error {
	if len(n) < MinWebEIDNonceChars || len(n) > MaxWebEIDNonceChars {
		return ErrBadWebEIDNonce
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return ErrBadWebEIDNonce
		}
	}
	return nil
}

// SignatureAlgorithm is the token algorithm and signer options for a card
// key: RSA signs RS256 (PKCS#1 v1.5, SHA-256: every NHS card, series 8
// included), ECDSA P-256 ES256 and P-384 ES384.
func SignatureAlgorithm(pub crypto.PublicKey) (string, crypto.SignerOpts, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return token.RS256, crypto.SHA256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return token.ES256, crypto.SHA256, nil
		case elliptic.P384():
			return token.ES384, crypto.SHA384, nil
		}
	}
	return "", nil, pcsc.ErrUnsupportedAlgorithm
}

// Authenticate has the card sign an origin-bound challenge for a sign-in page.
//
// origin comes from the validated WebSocket handshake, never from a message.
// The card used is the one usable card, or the one the user picks when
// several are inserted (see pick and AuthenticateCard). One PIN operation
// is in flight on the desktop (exclusive): a second call while one is
// running gets ErrBusy at once, never queued behind a prompt. The order is: challenge format,
// card (the choice prompt when several are usable), authentication
// certificate, PIN status (tries left; blocked ends here), the prompt p
// (closed when the card is removed or ctx ends), the local PIN format check
// (a format error re-prompts once: nothing was sent to the card), then one
// signature over token.Digest with the authentication key. Nothing sent to
// the card is ever retried. The PIN is zeroed after use. Errors are *Error
// values with stable codes (Classify).
func (s *CardService) Authenticate(ctx context.Context, origin, challenge string, p prompt.Prompter) (*token.Token, error) {
	return s.AuthenticateCard(ctx, origin, challenge, "", p)
}

// AuthenticateCard is Authenticate with the card a page named: card is its
// id in Status (wire.CardState.ID), "" for none. A named card is used
// without a choice prompt (ErrCardNotFound when it is not inserted); with
// none named and several usable cards, p chooses (prompt.Chooser), and a p
// that cannot makes it ErrCardAmbiguous.
func (s *CardService) AuthenticateCard(ctx context.Context, origin, challenge, card string, p prompt.Prompter) (*token.Token, error) {
	if err := CheckChallenge(challenge); err != nil {
		return nil, err
	}
	sig, err := s.signChallenge(ctx, origin, card, p, "cardagent", func(alg string) ([]byte, error) {
		return token.Digest(alg, origin, challenge)
	})
	if err != nil {
		return nil, err
	}
	return &token.Token{
		Format:      token.Format,
		Algorithm:   sig.alg,
		Certificate: token.EncodeBinary(sig.cert.Raw),
		Origin:      origin,
		Signature:   token.EncodeBinary(sig.sig),
	}, nil
}

// AuthenticateWebEID is Authenticate for a relying party that verifies Web
// eID authentication tokens (format "web-eid:1.0"): the same card, checks,
// prompt and PIN handling, but the card signs Web eID's digest
// H(H(origin) || H(nonce)) (token.WebEIDDigest) and the token is Web eID's.
// nonce is the relying party's challenge nonce as it issued it (standard
// base64, 44 to 128 characters: CheckWebEIDNonce). The origin still comes
// from the handshake only.
func (s *CardService) AuthenticateWebEID(ctx context.Context, origin, nonce string, p prompt.Prompter) (*token.WebEIDToken, error) {
	return s.AuthenticateWebEIDCard(ctx, origin, nonce, "", p)
}

// AuthenticateWebEIDCard is AuthenticateWebEID with the card a page named
// ("" for none), chosen as AuthenticateCard does.
func (s *CardService) AuthenticateWebEIDCard(ctx context.Context, origin, nonce, card string, p prompt.Prompter) (*token.WebEIDToken, error) {
	if err := CheckWebEIDNonce(nonce); err != nil {
		return nil, err
	}
	sig, err := s.signChallenge(ctx, origin, card, p, "web-eid", func(alg string) ([]byte, error) {
		return token.WebEIDDigest(alg, origin, nonce)
	})
	if err != nil {
		return nil, err
	}
	return token.NewWebEIDToken(sig.alg, sig.cert.Raw, sig.sig, version.Version), nil
}

// signature is what signChallenge returns: the algorithm, the certificate
// whose key signed, and the signature (JOSE form: raw r||s for ECDSA).
type signature struct {
	alg  string
	cert *x509.Certificate
	sig  []byte
}

// signChallenge runs one sign-in on the card pick chooses (card: the one a
// page named, "" for none): the card's authentication key signs
// digest(alg). See Authenticate for the order of the checks.
func (s *CardService) signChallenge(ctx context.Context, origin, card string, p prompt.Prompter, format string, digest func(alg string) ([]byte, error)) (res *signature, err error) {
	s.init()
	start := time.Now()
	log := s.Log.With(zap.String("origin", origin), zap.String("format", format))
	reader := ""
	defer func() {
		if err != nil {
			e := Classify(err)
			err = e
			log.Info("authentication failed", zap.String("reader", reader), zap.String("code", string(e.Code)),
				zap.Int("tries_left", e.TriesLeft), zap.NamedError("cause", e.Err), zap.Duration("took", time.Since(start)))
			return
		}
		log.Info("authenticated", zap.String("reader", reader), zap.String("algorithm", res.alg), zap.Duration("took", time.Since(start)))
	}()
	if origin == "" {
		return nil, NewError(wire.CodeBadRequest, "no origin", nil)
	}
	err = s.onCard(ctx, selectionFor(card, origin, "sign in", p), &reader, func(pk picked) (err error) {
		res, err = s.authenticate(ctx, pk, origin, p, digest)
		if err == nil {
			s.signedIn(pk.slot) // the removal policy's session (cardservice_session.go)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// markMute records that the card stopped answering: status says so, and
// sign-ins fail at once until it is taken out and inserted again.
func (s *CardService) markMute(cs *cardSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !cs.detached {
		cs.state, cs.hint = wire.CardMute, hintMute
	}
}

// cardFailure makes an error of a card operation that no code describes
// (a malformed answer, a signature that does not verify) a card_error: the
// card failed, not the agent.
func cardFailure(err error) error {
	if e := Classify(err); e.Code == wire.CodeInternalError {
		return NewError(wire.CodeCardError, "", err)
	}
	return err
}

func (s *CardService) authenticate(ctx context.Context, pk picked, origin string, p prompt.Prompter, digestFor func(alg string) ([]byte, error)) (*signature, error) {
	cs := pk.slot
	card, certs, authCert, err := s.cardCertificates(ctx, cs, pcsc.KeyAuthentication)
	if err != nil {
		return nil, err
	}
	if authCert == nil {
		return nil, ErrNoCertificate
	}
	// A key the driver cannot sign with is said before any prompt.
	if kt := unusableSignInKey(card, certs); kt != "" {
		return nil, errUnsupportedKey(kt)
	}
	alg, opts, err := SignatureAlgorithm(authCert.Cert.PublicKey)
	if err != nil {
		return nil, err
	}
	digest, err := digestFor(alg)
	if err != nil {
		return nil, err
	}

	// Tries left, for the prompt; a blocked PIN ends here without a prompt.
	st, err := s.pinStatus(ctx, cs, card)
	if err != nil {
		return nil, err
	}

	pin := s.cachedPIN(cs, origin, st.Retries)
	fromCache := pin != nil
	if fromCache {
		// A sign-in from the cache is confirmed by the user (and counts
		// against the origin's prompt rate limit like a prompt).
		ok, err := s.confirmCached(ctx, cs, p, origin, certs)
		switch {
		case errors.Is(err, prompt.ErrUnavailable):
			// No consent dialog here (pinentry only): ask for the PIN.
			prompt.Zero(pin)
			pin, fromCache = nil, false
		case err != nil:
			prompt.Zero(pin)
			return nil, err
		case !ok:
			prompt.Zero(pin)
			return nil, Classify(prompt.ErrCancelled)
		}
	}
	if !fromCache {
		if p == nil {
			return nil, ErrPromptUnavailable
		}
		req := prompt.Request{
			Origin:    origin,
			CardType:  s.typeOf(cs),
			TriesLeft: st.Retries,
			Purpose:   "sign in",
			Timeout:   s.PromptTimeout,
		}
		if pk.several {
			req.Reader = cs.reader
		}
		if h := holderOf(certs); h != nil {
			req.Holder = h.Name
		}
		if pin, err = s.askPIN(ctx, cs, p, req); err != nil {
			return nil, err
		}
	}
	defer prompt.Zero(pin)

	// The card may have left, or the page gone away, while the prompt was
	// open: then nothing is sent to the card.
	if err := cardGone(ctx, cs); err != nil {
		return nil, err
	}
	called := false
	key, err := card.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) {
		if called { // drivers ask once per Sign; never hand the PIN out twice
			return nil, errors.New("PIN asked for twice")
		}
		called = true
		return bytes.Clone(pin), nil
	})
	if err != nil {
		return nil, err
	}
	sig, err := s.signWith(ctx, cs, key, digest, opts)
	if err != nil {
		return nil, err
	}
	s.setPIN(cs, wire.TriesUnknown, true)
	if !fromCache {
		s.storePIN(cs, pin, origin)
	}
	if pub, ok := authCert.Cert.PublicKey.(*ecdsa.PublicKey); ok {
		// Drivers return ASN.1 DER; ES256/ES384 are JOSE's raw r||s.
		if sig, err = token.ECDSARaw(pub, sig); err != nil {
			return nil, cardFailure(err)
		}
	}
	return &signature{alg: alg, cert: authCert.Cert, sig: sig}, nil
}

// askPIN shows the prompt; the prompt is closed when the card leaves or ctx
// ends. A PIN failing the local format check is refused before anything is
// sent to the card, and the prompt is shown once more with the reason.
func (s *CardService) askPIN(ctx context.Context, cs *cardSlot, p prompt.Prompter, req prompt.Request) ([]byte, error) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(cs.ctx, func() { cancel(pcsc.ErrCardRemoved) })
	defer stop()
	for attempt := 0; ; attempt++ {
		pin, err := p.PIN(pctx, req)
		if cs.ctx.Err() != nil {
			prompt.Zero(pin)
			return nil, context.Cause(cs.ctx)
		}
		if err != nil {
			prompt.Zero(pin)
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
		ferr := s.checkPIN(pin)
		if ferr == nil {
			return pin, nil
		}
		prompt.Zero(pin)
		if attempt > 0 {
			return nil, NewError(wire.CodePINFormat, "", ferr)
		}
		why := ferr.Error()
		if um, ok := ferr.(interface{ UserMessage() string }); ok {
			why = um.UserMessage()
		}
		if !strings.HasSuffix(why, ".") {
			why += "."
		}
		req.Retry = "That PIN cannot be right: " + why + " Nothing was sent to the card; please enter it again."
	}
}

func (s *CardService) checkPIN(pin []byte) error {
	if len(pin) == 0 {
		return errors.New("no PIN entered")
	}
	if s.PINPolicy != nil {
		return s.PINPolicy.Check(pin)
	}
	return nil
}

func (s *CardService) cardOf(cs *cardSlot) pcsc.Card {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cs.card
}

func (s *CardService) typeOf(cs *cardSlot) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cs.typeName
}

// setPIN records the PIN state after an operation: tries left (or, after a
// success, the highest count seen on this card: a correct PIN resets the
// counter, and reading it back would cost a card round trip).
func (s *CardService) setPIN(cs *cardSlot, tries int, success bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if success {
		tries = cs.maxTries
	}
	if tries > cs.maxTries {
		cs.maxTries = tries
	}
	pin := &wire.PINReport{TriesLeft: tries, Blocked: tries == 0}
	changed := cs.pin == nil || *cs.pin != *pin
	cs.pin = pin
	if changed && !cs.detached {
		// The tray (tries left, blocked) and pages hear of it at once.
		s.emitLocked(wire.Event{Kind: wire.EventCardChanged, Reader: cs.reader, Card: s.cardStateLocked(cs, s.Now())})
	}
}

// pinCache holds a card's PIN for the configured window, for the one origin
// whose sign-in prompted for it. Guarded by CardService.mu.
type pinCache struct {
	pin    []byte
	origin string
	tries  int // tries left when the PIN was cached (after its success)
	timer  *time.Timer
}

func (c *pinCache) clear() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	prompt.Zero(c.pin)
	c.pin, c.origin, c.tries = nil, "", 0
}

// cachedPIN returns a copy of the PIN cached for origin, or nil. tries is
// the card's count of tries left just read: fewer than when the PIN was
// cached means a wrong PIN was entered since (here or in another
// application), perhaps because the PIN was changed: the cache is dropped
// rather than the cached PIN sent, which could spend a try the user did
// not type.
func (s *CardService) cachedPIN(cs *cardSlot, origin string, tries int) []byte {
	if s.PINCache <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &cs.cache
	if c.pin == nil || c.origin != origin {
		return nil
	}
	if tries >= 0 && c.tries >= 0 && tries < c.tries {
		c.clear()
		return nil
	}
	return bytes.Clone(c.pin)
}

// confirmCached asks the user, with the consent dialog, whether origin may
// sign in with the cached PIN.
func (s *CardService) confirmCached(ctx context.Context, cs *cardSlot, p prompt.Prompter, origin string, certs []pcsc.Certificate) (bool, error) {
	conf, ok := p.(prompt.Confirmer)
	if !ok {
		return false, prompt.ErrUnavailable
	}
	c := prompt.Consent{Origin: origin, CardType: s.typeOf(cs), Timeout: s.PromptTimeout}
	if h := holderOf(certs); h != nil {
		c.Holder = h.Name
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(cs.ctx, func() { cancel(pcsc.ErrCardRemoved) })
	defer stop()
	allowed, err := conf.Confirm(pctx, c)
	if cs.ctx.Err() != nil {
		return false, context.Cause(cs.ctx)
	}
	if err != nil && !errors.Is(err, prompt.ErrUnavailable) && ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	return allowed, err
}

func (s *CardService) storePIN(cs *cardSlot, pin []byte, origin string) {
	if s.PINCache <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs.detached {
		return
	}
	cs.cache.clear()
	cs.cache.pin = bytes.Clone(pin)
	cs.cache.origin, cs.cache.tries = origin, cs.maxTries
	c := &cs.cache
	stored := c.pin
	c.timer = time.AfterFunc(s.PINCache, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(c.pin) > 0 && len(stored) > 0 && &c.pin[0] == &stored[0] {
			c.clear()
		}
	})
}

func (s *CardService) dropCachedPIN(cs *cardSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs.cache.clear()
}
