package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cardagent/cardagent/agent/certinfo"
)

// Reason is a stable, machine-readable code saying why a token was
// rejected. Relying parties may show it, log it and match on it; the codes
// never change meaning.
type Reason string

// Reasons, in the order Verify checks them.
const (
	ReasonBadFormat         Reason = "bad_format"         // not a cardagent-auth-token/1, or a field does not decode
	ReasonUnknownAlgorithm  Reason = "unknown_algorithm"  // algorithm is not RS256, PS256, ES256 or ES384
	ReasonBadCertificate    Reason = "bad_certificate"    // certificate (or a chain entry) does not parse, or its key is unusable
	ReasonAlgorithmMismatch Reason = "algorithm_mismatch" // algorithm does not fit the key (RS256/PS256: RSA, ES256: P-256, ES384: P-384)
	ReasonUnknownChallenge  Reason = "unknown_challenge"  // challenge was never issued by this relying party (or is long gone)
	ReasonChallengeReused   Reason = "challenge_reused"   // challenge was already presented once (a replay)
	ReasonChallengeExpired  Reason = "challenge_expired"  // challenge was issued too long ago
	ReasonExpired           Reason = "certificate_expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonBadKeyUsage       Reason = "bad_key_usage"      // not an authentication certificate: leaf lacks digitalSignature, has nonRepudiation (a signing certificate), or its extended key usage excludes clientAuth
	ReasonUntrustedChain    Reason = "untrusted_chain"    // no chain to Roots, or the issuer is not one of AuthenticationCAs
	ReasonBadSignature      Reason = "bad_signature"      // signature does not verify over the expected origin and the challenge
	ReasonOriginMismatch    Reason = "origin_mismatch"    // token was made for another origin
	ReasonRevoked           Reason = "revoked"            // the certificate is revoked (OCSP or CRL)
	ReasonRevocationUnknown Reason = "revocation_unknown" // policy required, and the certificate's status could not be learnt as good
)

// VerifyError is the error Verify returns for a token it rejects. Match it
// with errors.Is against the sentinels below (ErrBadSignature, ...), or with
// errors.As and its Reason. Detail and Err are for logs: send only the
// Reason to a browser.
type VerifyError struct {
	Reason Reason
	Detail string
	Err    error
}

func (e *VerifyError) Error() string {
	msg := "token rejected: " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadSignature) match any VerifyError with that reason.
func (e *VerifyError) Is(target error) bool {
	t, ok := target.(*VerifyError)
	return ok && t.Reason == e.Reason
}

func newError(r Reason, detail string) *VerifyError { return &VerifyError{Reason: r, Detail: detail} }

// Sentinels for errors.Is, one per Reason.
var (
	ErrBadFormat         = &VerifyError{Reason: ReasonBadFormat}
	ErrUnknownAlgorithm  = &VerifyError{Reason: ReasonUnknownAlgorithm}
	ErrBadCertificate    = &VerifyError{Reason: ReasonBadCertificate}
	ErrAlgorithmMismatch = &VerifyError{Reason: ReasonAlgorithmMismatch}
	ErrUnknownChallenge  = &VerifyError{Reason: ReasonUnknownChallenge}
	ErrChallengeReused   = &VerifyError{Reason: ReasonChallengeReused}
	ErrChallengeExpired  = &VerifyError{Reason: ReasonChallengeExpired}
	ErrExpired           = &VerifyError{Reason: ReasonExpired}
	ErrNotYetValid       = &VerifyError{Reason: ReasonNotYetValid}
	ErrBadKeyUsage       = &VerifyError{Reason: ReasonBadKeyUsage}
	ErrUntrustedChain    = &VerifyError{Reason: ReasonUntrustedChain}
	ErrBadSignature      = &VerifyError{Reason: ReasonBadSignature}
	ErrOriginMismatch    = &VerifyError{Reason: ReasonOriginMismatch}
	ErrRevoked           = &VerifyError{Reason: ReasonRevoked}
	ErrRevocationUnknown = &VerifyError{Reason: ReasonRevocationUnknown}
)

// ReasonOf returns the reason of a VerifyError in err's chain, or "".
func ReasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

// ErrMisconfigured is returned (wrapped) when the Verifier itself is not
// usable: no roots, no challenge store, no expected origin. It is the
// relying party's fault, not the token's.
var ErrMisconfigured = errors.New("token verifier misconfigured")

// Limits on what Verify accepts.
const (
	MaxTokenSize    = 64 << 10 // ParseToken: bytes of JSON
	maxChain        = 8        // intermediate certificates in a token
	maxCertB64      = 16 << 10 // characters of one base64url certificate
	maxSignatureB64 = 2048     // characters of the base64url signature (RSA-8192 needs 1366)
	minRSABits      = 1024     // legacy NHS cards have RSA-1024 keys
)

// Verifier checks tokens for a relying party. Set the fields, then call
// Verify from any number of goroutines.
type Verifier struct {
	// Roots are the trusted root certificates (for NHS cards the NHS Root
	// Authority). Required: a nil pool is ErrMisconfigured, never the system roots.
	Roots *x509.CertPool
	// Intermediates are issuing CAs to build chains with, in addition to the
	// chain carried in the token (cards often do not hold their CA).
	Intermediates *x509.CertPool
	// AuthenticationCAs, when set, are the only CAs whose certificates may
	// sign in (for NHS cards Authentication G2, not Signing G2): the leaf's
	// issuer in the verified chain must be one of them. Whether set or not,
	// a leaf with the nonRepudiation key usage (a signing certificate) is
	// refused.
	AuthenticationCAs []*x509.Certificate
	// Revocation checks the leaf's revocation status (OCSP, else CRL) under
	// its Policy, after every other check passed; nil means not checked
	// (Result.Revocation says policy off, not_checked).
	Revocation *RevocationChecker
	// Challenges issues challenges and makes them single-use. Required.
	Challenges ChallengeStore
	// Now is the clock for certificate validity (default time.Now).
	Now func() time.Time
	// MaxAge is the lifetime of challenges issued by NewChallenge (default
	// DefaultChallengeTTL). Freshness is enforced by the store's expiry.
	MaxAge time.Duration
}

// Result is what a verified token says.
type Result struct {
	// Certificate is the authentication certificate that signed.
	Certificate *x509.Certificate
	// Chain is the verified chain, Certificate first, a trusted root last.
	Chain []*x509.Certificate
	// Holder is the card holder named in Certificate.
	Holder    certinfo.Holder
	Algorithm string
	// Origin is the origin the signature is bound to (the expected one).
	Origin string
	// Revocation says how the certificate's revocation was checked and
	// what was learnt.
	Revocation Revocation
}

// NewChallenge issues a challenge from v.Challenges valid for v.MaxAge.
func (v *Verifier) NewChallenge() (string, error) {
	if v.Challenges == nil {
		return "", fmt.Errorf("%w: no challenge store", ErrMisconfigured)
	}
	ttl := v.MaxAge
	if ttl <= 0 {
		ttl = DefaultChallengeTTL
	}
	return v.Challenges.Issue(ttl)
}

// ParseToken decodes a token from JSON (unknown fields are ignored). Bad
// JSON, or more than MaxTokenSize bytes, is ErrBadFormat.
func ParseToken(data []byte) (*Token, error) { return parseJSON[Token](data) }

// parseJSON decodes a token of either format (ErrBadFormat for bad JSON or
// more than MaxTokenSize bytes).
func parseJSON[T any](data []byte) (*T, error) {
	if len(data) > MaxTokenSize {
		return nil, newError(ReasonBadFormat, fmt.Sprintf("token is larger than %d bytes", MaxTokenSize))
	}
	var t T
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, &VerifyError{Reason: ReasonBadFormat, Detail: "token is not valid JSON", Err: err}
	}
	return &t, nil
}

// configured says what v lacks to verify anything for expectedOrigin (ErrMisconfigured).
func (v *Verifier) configured(expectedOrigin string) error {
	switch {
	case v.Roots == nil:
		return fmt.Errorf("%w: no trusted roots", ErrMisconfigured)
	case v.Challenges == nil:
		return fmt.Errorf("%w: no challenge store", ErrMisconfigured)
	case expectedOrigin == "":
		return fmt.Errorf("%w: no expected origin", ErrMisconfigured)
	}
	return nil
}

// Verify checks tok for a sign-in at expectedOrigin (the relying party's
// own origin, as the browser shows it: "https://signin.example.nhs.uk") with
// challenge (the one this relying party issued for this sign-in), and
// returns who signed. It rejects a token with a *VerifyError; a problem with
// v itself is ErrMisconfigured.
//
// The checks, in order: format tag and field encodings; algorithm; the
// certificate and its key type against the algorithm; the challenge is
// consumed (single-use and fresh: from here on the token cannot be presented
// again, whatever the outcome); the leaf's validity at Now and key usage;
// the chain to Roots (extended key usage clientAuth or any); the signature
// over Digest(alg, expectedOrigin, challenge); and finally the token's
// informational Origin field. A signature made for another origin is
// reported as origin_mismatch when it verifies over the token's Origin, as
// bad_signature otherwise.
func (v *Verifier) Verify(tok *Token, expectedOrigin, challenge string) (*Result, error) {
	if err := v.configured(expectedOrigin); err != nil {
		return nil, err
	}
	p, err := parse(tok)
	if err != nil {
		return nil, err
	}
	now, err := v.consume(challenge)
	if err != nil {
		return nil, err
	}
	chain, err := v.verifyCertificate(p, now)
	if err != nil {
		return nil, err
	}
	digest, err := Digest(tok.Algorithm, expectedOrigin, challenge)
	if err != nil {
		return nil, err // unreachable: parse checked the algorithm
	}
	if !verifySignature(tok.Algorithm, p.cert.PublicKey, digest, p.sig) {
		if tok.Origin != expectedOrigin {
			if d, err := Digest(tok.Algorithm, tok.Origin, challenge); err == nil && verifySignature(tok.Algorithm, p.cert.PublicKey, d, p.sig) {
				return nil, newError(ReasonOriginMismatch, fmt.Sprintf("token was made for %q, not %q", tok.Origin, expectedOrigin))
			}
		}
		return nil, newError(ReasonBadSignature, "signature does not verify over the expected origin and challenge")
	}
	if tok.Origin != expectedOrigin {
		return nil, newError(ReasonOriginMismatch, fmt.Sprintf("token names origin %q, not %q", tok.Origin, expectedOrigin))
	}
	rev := Revocation{Policy: RevocationOff, Status: StatusNotChecked}
	if v.Revocation != nil && len(chain) > 1 {
		rev = v.Revocation.Check(context.Background(), p.cert, chain[1])
		switch {
		case rev.Status == StatusRevoked:
			return nil, newError(ReasonRevoked, "the certificate is revoked ("+rev.Source+")")
		case rev.Policy == RevocationRequired && rev.Status != StatusGood:
			return nil, newError(ReasonRevocationUnknown, rev.Status+": "+rev.Detail)
		}
	}
	return &Result{
		Revocation:  rev,
		Certificate: p.cert,
		Chain:       chain,
		Holder:      certinfo.HolderOf(p.cert),
		Algorithm:   tok.Algorithm,
		Origin:      expectedOrigin,
	}, nil
}

// consume consumes challenge in the store (single use) and returns the time
// the rest of the verification is made at.
func (v *Verifier) consume(challenge string) (time.Time, error) {
	if err := v.Challenges.Consume(challenge); err != nil {
		var ve *VerifyError
		if errors.As(err, &ve) {
			return time.Time{}, err
		}
		// A shared store that failed (database down) is not the token's
		// fault: return it as it is, for the caller to treat as a 500.
		return time.Time{}, fmt.Errorf("consuming challenge: %w", err)
	}
	if v.Now != nil {
		return v.Now(), nil
	}
	return time.Now(), nil
}

// parsed is a token whose fields decoded.
type parsed struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	sig   []byte
}

// parse does the checks that need no state: format, algorithm, encodings,
// key type.
func parse(tok *Token) (*parsed, error) {
	if tok == nil {
		return nil, newError(ReasonBadFormat, "no token")
	}
	if tok.Format != Format {
		return nil, newError(ReasonBadFormat, fmt.Sprintf("format %q is not %q", truncate(tok.Format), Format))
	}
	if _, err := Hash(tok.Algorithm); err != nil {
		return nil, newError(ReasonUnknownAlgorithm, fmt.Sprintf("algorithm %q", truncate(tok.Algorithm)))
	}
	if len(tok.Signature) == 0 || len(tok.Signature) > maxSignatureB64 {
		return nil, newError(ReasonBadFormat, "signature missing or too long")
	}
	sig, err := DecodeBinary(tok.Signature)
	if err != nil {
		return nil, &VerifyError{Reason: ReasonBadFormat, Detail: "signature is not base64url without padding", Err: err}
	}
	if len(tok.Chain) > maxChain {
		return nil, newError(ReasonBadFormat, fmt.Sprintf("chain has %d certificates, at most %d allowed", len(tok.Chain), maxChain))
	}
	p := &parsed{sig: sig}
	if p.cert, err = parseCert(tok.Certificate, "certificate"); err != nil {
		return nil, err
	}
	for i, c := range tok.Chain {
		cc, err := parseCert(c, fmt.Sprintf("chain[%d]", i))
		if err != nil {
			return nil, err
		}
		p.chain = append(p.chain, cc)
	}
	if err := checkKey(tok.Algorithm, p.cert.PublicKey); err != nil {
		return nil, err
	}
	return p, nil
}

func parseCert(b64, what string) (*x509.Certificate, error) {
	if b64 == "" || len(b64) > maxCertB64 {
		return nil, newError(ReasonBadFormat, what+" missing or too long")
	}
	der, err := DecodeBinary(b64)
	if err != nil {
		return nil, &VerifyError{Reason: ReasonBadFormat, Detail: what + " is not base64url without padding", Err: err}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &VerifyError{Reason: ReasonBadCertificate, Detail: what + " does not parse", Err: err}
	}
	return c, nil
}

// checkKey checks that the certificate's key fits alg.
func checkKey(alg string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return newError(ReasonBadCertificate, fmt.Sprintf("RSA key of %d bits is too small", k.N.BitLen()))
		}
		if alg == RS256 || alg == PS256 {
			return nil
		}
	case *ecdsa.PublicKey:
		if (alg == ES256 && k.Curve == elliptic.P256()) || (alg == ES384 && k.Curve == elliptic.P384()) {
			return nil
		}
	default:
		return newError(ReasonBadCertificate, fmt.Sprintf("unsupported public key type %T", pub))
	}
	return newError(ReasonAlgorithmMismatch, fmt.Sprintf("%s does not fit a %s key", alg, keyName(pub)))
}

func keyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// verifyCertificate checks the leaf's dates and key usage, then its chain.
func (v *Verifier) verifyCertificate(p *parsed, now time.Time) ([]*x509.Certificate, error) {
	leaf := p.cert
	if now.Before(leaf.NotBefore) {
		return nil, newError(ReasonNotYetValid, "certificate is valid from "+leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, newError(ReasonExpired, "certificate expired "+leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	// A certificate without the KeyUsage extension is unrestricted (RFC 5280
	// 4.2.1.3); NHS authentication certificates have it, with digitalSignature.
	hasKU := slices.ContainsFunc(leaf.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidExtKeyUsage) })
	if hasKU && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, newError(ReasonBadKeyUsage, "certificate key usage lacks digitalSignature")
	}
	// The card's signing (non-repudiation) key must never sign in: a
	// signature it makes for another purpose would otherwise be a sign-in.
	if leaf.KeyUsage&x509.KeyUsageContentCommitment != 0 {
		return nil, newError(ReasonBadKeyUsage, "a signing (nonRepudiation) certificate is not for sign-in")
	}
	if len(leaf.ExtKeyUsage)+len(leaf.UnknownExtKeyUsage) > 0 &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, newError(ReasonBadKeyUsage, "certificate extended key usage lacks clientAuth")
	}
	inter := x509.NewCertPool()
	if v.Intermediates != nil {
		inter = v.Intermediates.Clone()
	}
	for _, c := range p.chain {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) {
			switch inv.Reason {
			case x509.Expired:
				return nil, &VerifyError{Reason: ReasonExpired, Detail: "a CA certificate in the chain is outside its validity", Err: err}
			case x509.IncompatibleUsage:
				return nil, &VerifyError{Reason: ReasonBadKeyUsage, Detail: "the chain does not allow clientAuth", Err: err}
			}
		}
		return nil, &VerifyError{Reason: ReasonUntrustedChain, Detail: "certificate does not chain to a trusted root", Err: err}
	}
	if len(v.AuthenticationCAs) > 0 {
		// Keep only the chains whose issuing CA issues authentication certificates.
		chains = slices.DeleteFunc(chains, func(c []*x509.Certificate) bool {
			return len(c) < 2 || !slices.ContainsFunc(v.AuthenticationCAs, c[1].Equal)
		})
		if len(chains) == 0 {
			return nil, newError(ReasonUntrustedChain, "the issuer "+truncate(leaf.Issuer.String())+" is not an authentication CA")
		}
	}
	return chains[0], nil
}

func verifySignature(alg string, pub crypto.PublicKey, digest, sig []byte) bool {
	switch alg {
	case RS256, PS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false
		}
		if alg == RS256 {
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
		}
		return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}) == nil
	case ES256, ES384:
		// JOSE: raw r||s, each half the curve's size.
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || len(sig) != 2*ecdsaSize(k) {
			return false
		}
		n := len(sig) / 2
		return ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]))
	}
	return false
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// CheckOrigin reports whether s is a web origin in the ASCII serialisation
// browsers send (and the agent signs): "https" or "http", a lower-case host,
// a port only when it is not the scheme's default, and nothing else: no
// path, not even a trailing slash ("https://signin.example.nhs.uk",
// "http://localhost:8080"). Relying parties use it to catch a mistyped
// expected origin, which would otherwise make every token fail.
func CheckOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("origin %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("origin %q: scheme must be https or http", s)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("origin %q: no host", s)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("origin %q: must be scheme://host[:port] only, without path or trailing slash", s)
	case strings.ToLower(u.Host) != u.Host:
		return fmt.Errorf("origin %q: host must be lower case", s)
	case (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80"):
		return fmt.Errorf("origin %q: leave out the default port, as browsers do", s)
	case strings.HasSuffix(u.Host, ":"):
		return fmt.Errorf("origin %q: empty port", s)
	}
	return nil
}
