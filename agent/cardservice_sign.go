package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// ErrNoSigningCertificate: the card has no signing (non-repudiation) certificate.
var ErrNoSigningCertificate = NewError(wire.CodeNoCertificate, "the card has no signing certificate", nil)

// SignRequest is a request to sign documents with the card's signing key.
type SignRequest struct {
	// Origin is the page that asked (from the checked request, never from its body).
	Origin string
	// Hash is the digest algorithm: crypto.SHA1 or crypto.SHA256 (RSASSA-PKCS1-v1_5).
	Hash crypto.Hash
	// Documents are the bytes to sign, each hashed with Hash and signed once.
	Documents [][]byte
	// Noun names one document in the prompt ("prescription"); "document" when empty.
	Noun string
}

// SignResult is what SignDocuments made.
type SignResult struct {
	// Certificate is the signing certificate, whose key made the signatures.
	Certificate *x509.Certificate
	// Signatures are the raw signatures, one per document, in order.
	Signatures [][]byte
	// Holder is the certificate holder's name, for the audit log.
	Holder string
}

// Activity is a signing in progress, for the tray ("Signing 3 prescriptions
// for https://…").
type Activity struct {
	Origin    string
	Documents int
	Noun      string
	Since     time.Time
}

// Words describes the activity: "Signing 3 prescriptions for https://rx.example".
func (a Activity) Words() string {
	return "Signing " + countOf(a.Documents, a.Noun) + " for " + a.Origin
}

// Activity returns the signing in progress, or nil.
func (s *CardService) Activity() *Activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.activity == nil {
		return nil
	}
	a := *s.activity
	return &a
}

// setActivity records a (nil: none) and tells the tray.
func (s *CardService) setActivity(a *Activity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activity = a
	s.emitLocked(wire.Event{Kind: wire.EventActivity})
}

// SignDocuments has the card's signing (non-repudiation) key sign each
// document: the one usable card, or the one the user picks (p as a
// prompt.Chooser) when several are inserted; then one PIN prompt naming the origin, the holder, the number
// of documents and the tries left. The PIN is never taken from the PIN
// cache. The signing key may demand the PIN before every signature (PIV
// slot 9C does): each signature verifies the typed PIN and signs in one card
// transaction. A wrong PIN stops at the first signature and is never
// retried; any failure stops the batch and nothing is returned. The PIN is
// zeroed after use. Errors are *Error values (Classify).
func (s *CardService) SignDocuments(ctx context.Context, req SignRequest, p prompt.Prompter) (res *SignResult, err error) {
	s.init()
	start := time.Now()
	log := s.Log.With(zap.String("origin", req.Origin))
	reader := ""
	defer func() {
		if err != nil {
			e := Classify(err)
			err = e
			log.Info("signing failed", zap.String("reader", reader), zap.Int("documents", len(req.Documents)),
				zap.String("code", string(e.Code)), zap.Int("tries_left", e.TriesLeft), zap.NamedError("cause", e.Err),
				zap.Duration("took", time.Since(start)))
			return
		}
		// The audit line: who signed how many for which site; never the documents or the PIN.
		log.Info("signed", zap.String("reader", reader), zap.String("holder", res.Holder),
			zap.Int("documents", len(res.Signatures)), zap.Duration("took", time.Since(start)))
	}()
	if req.Origin == "" || len(req.Documents) == 0 {
		return nil, NewError(wire.CodeBadRequest, "nothing to sign", nil)
	}
	if req.Hash != crypto.SHA1 && req.Hash != crypto.SHA256 {
		return nil, NewError(wire.CodeBadRequest, "unsupported digest algorithm", nil)
	}
	sel := selectionFor("", req.Origin, signPurpose(len(req.Documents), req.Noun), p)
	err = s.onCard(ctx, sel, &reader, func(pk picked) (err error) {
		s.setActivity(&Activity{Origin: req.Origin, Documents: len(req.Documents), Noun: req.Noun, Since: s.Now()})
		defer s.setActivity(nil)
		res, err = s.signDocuments(ctx, pk, req, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (s *CardService) signDocuments(ctx context.Context, pk picked, req SignRequest, p prompt.Prompter) (*SignResult, error) {
	cs := pk.slot
	card, certs, sc, err := s.cardCertificates(ctx, cs, pcsc.KeySignature)
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, ErrNoSigningCertificate
	}
	signCert := sc.Cert
	if _, ok := signCert.PublicKey.(*rsa.PublicKey); !ok { // RS1 and RS256 are RSA signatures
		return nil, NewError(wire.CodeUnsupportedCard, "the card's signing key is not an RSA key", nil)
	}

	st, err := s.pinStatus(ctx, cs, card)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrPromptUnavailable
	}
	preq := prompt.Request{
		Origin:    req.Origin,
		CardType:  s.typeOf(cs),
		TriesLeft: st.Retries,
		Purpose:   signPurpose(len(req.Documents), req.Noun),
		Timeout:   s.PromptTimeout,
	}
	if pk.several {
		preq.Reader = cs.reader
	}
	holder := ""
	if h := holderOf(certs); h != nil {
		holder, preq.Holder = h.Name, h.Name
	}
	pin, err := s.askPIN(ctx, cs, p, preq)
	if err != nil {
		return nil, err
	}
	defer prompt.Zero(pin)

	// Card pulled or page gone during the prompt: nothing is sent to the card.
	if err := cardGone(ctx, cs); err != nil {
		return nil, err
	}
	// The driver asks for the PIN once per signature; each time it gets a
	// copy of the one the user typed, which it zeroes after use.
	key, err := card.PrivateKey(pcsc.KeySignature, func() ([]byte, error) { return bytes.Clone(pin), nil })
	if err != nil {
		return nil, err
	}
	sigs := make([][]byte, 0, len(req.Documents))
	for _, doc := range req.Documents {
		if err := cardGone(ctx, cs); err != nil {
			return nil, err
		}
		h := req.Hash.New()
		h.Write(doc)
		digest := h.Sum(nil)
		sig, err := s.signWith(ctx, cs, key, digest, req.Hash)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	s.setPIN(cs, wire.TriesUnknown, true)
	return &SignResult{Certificate: signCert, Signatures: sigs, Holder: holder}, nil
}

// signPurpose is the prompt's purpose: "sign 1 prescription", "sign 3 prescriptions".
func signPurpose(n int, noun string) string { return "sign " + countOf(n, noun) }

// countOf is "1 prescription", "3 prescriptions" ("document" when noun is "").
func countOf(n int, noun string) string {
	if noun == "" {
		noun = "document"
	}
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
