// Package cardtest is the conformance suite every card driver passes.
//
// The same table of cases runs against the PIV driver, the series 8 driver
// and the PKCS#11 driver, each over its virtual card (in-process, and
// through real pcscd + vpcd end to end).
//
// A driver's test supplies a Fixture whose New makes a fresh Env for each
// case: a freshly opened driver over a freshly inserted virtual card, plus
// ground truth read from the emulator (never through the driver) and fault
// hooks. Hooks left nil skip the cases (or checks) that need them, with the
// reason logged.
//
//	func TestConformance(t *testing.T) {
//		cardtest.Run(t, cardtest.Fixture{
//			Name:       "piv-rsa2048",
//			New:        newEnv,
//			Algorithms: cardtest.RSAAlgorithms(),
//			Caps:       cardtest.Caps{ChangePIN: true, Unblock: true},
//		})
//	}
package cardtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers the hashes the algorithms use
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// Env is one case's card: a freshly opened driver over a freshly inserted
// virtual card, with ground truth from the emulator.
type Env struct {
	// Card is the driver under test. The suite closes it when the case ends
	// (before the fixture's own t.Cleanup functions run).
	Card pcsc.Card
	// PIN and PUK are the card's correct secrets. PUK may be nil without Caps.Unblock.
	PIN, PUK []byte
	// PINTries and PUKTries read the tries left from the emulator, not via the driver.
	// nil skips the checks that need them.
	PINTries, PUKTries func() int
	// PullOnSign arranges that the card is pulled when the next signing APDU
	// (or the driver's equivalent) reaches it. nil skips the card-removed case.
	PullOnSign func()
	// Writes is the emulator's count of writes to persistent data. It must stay
	// 0 in every case except those changing or unblocking the PIN. nil: not checked.
	Writes func() int
	// APDUs counts the command APDUs the card has received. nil skips the checks
	// that prove an operation sent nothing (cache, format and algorithm rejection).
	APDUs func() int
	// Reopen, when set, opens a second driver instance on the same card, to
	// check that the identity is stable across opens. The fixture closes it.
	Reopen func(t *testing.T) pcsc.Card
}

// Caps says which optional operations the driver and card support.
type Caps struct {
	ChangePIN bool
	Unblock   bool
}

// Fixture describes one driver and card configuration.
type Fixture struct {
	Name string
	// New makes a fresh Env for one case; log is the logger the driver must use
	// (the suite captures it to check that no secret is logged). It calls
	// t.Fatal itself when it cannot.
	New func(t *testing.T, log *zap.Logger) *Env
	// Algorithms are the signing algorithms the card's keys support; each is
	// signed and the signature verified with the certificate's public key.
	// At least one is required.
	Algorithms []Alg
	Caps       Caps
	// SignOnly fixtures (a PKCS#11 token without PIN counters) run only the signing cases.
	SignOnly bool
	// Keys are the key references whose certificates must be on the card
	// (default: pcsc.KeyAuthentication and pcsc.KeySignature).
	Keys []pcsc.KeyRef
	// BadPINs are PINs the driver must refuse locally with pcsc.ErrPINFormat
	// (default DefaultBadPINs).
	BadPINs [][]byte
	// NewPIN is a valid PIN, different from Env.PIN, used by the change and
	// unblock cases (default "246813").
	NewPIN []byte
}

// DefaultBadPINs are refused by every NHS card's PIN policy (6 to 8 characters).
var DefaultBadPINs = [][]byte{
	[]byte(""),
	[]byte("12a"),
	[]byte("123"),
	[]byte("12345"),
	[]byte("123456789"),
	[]byte("1234\x005"),
	[]byte("12345678901234567890"),
}

// Alg is one signing algorithm.
type Alg struct {
	Name string
	// Key to sign with; "" means pcsc.KeyAuthentication.
	Key pcsc.KeyRef
	// KeyAlgorithm is the public key type the algorithm needs (x509.RSA or x509.ECDSA).
	KeyAlgorithm x509.PublicKeyAlgorithm
	// Opts are passed to Sign: a crypto.Hash for PKCS#1 v1.5 and ECDSA, *rsa.PSSOptions for PSS.
	Opts crypto.SignerOpts
}

// The algorithms NHS cards use.
var (
	RSAPKCS1SHA1   = Alg{Name: "rsa-pkcs1v15-sha1", KeyAlgorithm: x509.RSA, Opts: crypto.SHA1}
	RSAPKCS1SHA256 = Alg{Name: "rsa-pkcs1v15-sha256", KeyAlgorithm: x509.RSA, Opts: crypto.SHA256}
	RSAPKCS1SHA384 = Alg{Name: "rsa-pkcs1v15-sha384", KeyAlgorithm: x509.RSA, Opts: crypto.SHA384}
	RSAPKCS1SHA512 = Alg{Name: "rsa-pkcs1v15-sha512", KeyAlgorithm: x509.RSA, Opts: crypto.SHA512}
	RSAPSSSHA256   = Alg{Name: "rsa-pss-sha256", KeyAlgorithm: x509.RSA,
		Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}}
	RSAPSSSHA256Auto = Alg{Name: "rsa-pss-sha256-saltauto", KeyAlgorithm: x509.RSA,
		Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto}}
	RSAPSSSHA512 = Alg{Name: "rsa-pss-sha512", KeyAlgorithm: x509.RSA,
		Opts: &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: rsa.PSSSaltLengthEqualsHash}}
	ECDSASHA256 = Alg{Name: "ecdsa-sha256", KeyAlgorithm: x509.ECDSA, Opts: crypto.SHA256}
	ECDSASHA384 = Alg{Name: "ecdsa-sha384", KeyAlgorithm: x509.ECDSA, Opts: crypto.SHA384}
	ECDSASHA512 = Alg{Name: "ecdsa-sha512", KeyAlgorithm: x509.ECDSA, Opts: crypto.SHA512}
)

// RSAAlgorithms are PKCS#1 v1.5 with SHA-256/384/512 and PSS with SHA-256 on the authentication key.
func RSAAlgorithms() []Alg {
	return []Alg{RSAPKCS1SHA256, RSAPKCS1SHA384, RSAPKCS1SHA512, RSAPSSSHA256}
}

// ECDSAAlgorithms are ECDSA with SHA-256 and SHA-384 on the authentication key.
func ECDSAAlgorithms() []Alg { return []Alg{ECDSASHA256, ECDSASHA384} }

// OnKey returns algs moved to key ref.
func OnKey(ref pcsc.KeyRef, algs ...Alg) []Alg {
	out := make([]Alg, len(algs))
	for i, a := range algs {
		a.Key = ref
		a.Name = string(ref) + "-" + a.Name
		out[i] = a
	}
	return out
}

type testCase struct {
	name    string
	signing bool // runs for SignOnly fixtures too
	writes  bool // changes persistent data: the Writes check does not apply
	skip    func(f Fixture) string
	run     func(t *testing.T, s *state)
}

// state is what a case works with.
type state struct {
	f    Fixture
	e    *Env
	logs *pcsctest.Buffer
}

// Cases lists the suite's case names, in order (for documentation and tests).
func Cases() []string {
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	return names
}

var cases []testCase

func init() {
	cases = []testCase{
		{name: "Identity", run: testIdentity},
		{name: "Certificates", signing: true, run: testCertificates},
		{name: "CertificatesCached", signing: true, run: testCertificatesCached},
		{name: "PINStatus", run: testPINStatus},
		{name: "SignCorrectPIN", signing: true, run: testSignCorrectPIN},
		{name: "Algorithms", signing: true, run: testAlgorithms},
		{name: "UnsupportedAlgorithm", signing: true, run: testUnsupportedAlgorithm},
		{name: "SignCancelled", signing: true, run: testSignCancelled},
		{name: "WrongPIN", run: testWrongPIN},
		{name: "BlockedPIN", run: testBlockedPIN},
		{name: "PINFormat", run: testPINFormat},
		{name: "ChangePIN", writes: true, skip: needCaps(func(c Caps) bool { return c.ChangePIN }, "ChangePIN"), run: testChangePIN},
		{name: "UnblockPIN", writes: true, skip: needCaps(func(c Caps) bool { return c.Unblock }, "Unblock"), run: testUnblockPIN},
		{name: "CardRemovedDuringSign", run: testCardRemoved},
		{name: "ConcurrentSign", signing: true, run: testConcurrentSign},
		{name: "SecretsNotLeaked", run: testSecretsNotLeaked},
	}
}

func needCaps(ok func(Caps) bool, what string) func(Fixture) string {
	return func(f Fixture) string {
		if !ok(f.Caps) {
			return "fixture does not support " + what
		}
		return ""
	}
}

// Run runs every case against f, each on a fresh Env.
func Run(t *testing.T, f Fixture) {
	t.Helper()
	if f.New == nil {
		t.Fatal("cardtest: Fixture.New is nil")
	}
	if len(f.Keys) == 0 {
		f.Keys = []pcsc.KeyRef{pcsc.KeyAuthentication, pcsc.KeySignature}
	}
	if f.BadPINs == nil {
		f.BadPINs = DefaultBadPINs
	}
	if f.NewPIN == nil {
		f.NewPIN = []byte("246813")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if f.SignOnly && !c.signing {
				t.Skip("sign-only fixture")
			}
			if c.skip != nil {
				if why := c.skip(f); why != "" {
					t.Skip(why)
				}
			}
			// Entries are encoded when written, as a real log sink does: an observer
			// keeps field values by reference, so a driver that logs a PIN slice and
			// then zeroes it would go unnoticed.
			logs := &pcsctest.Buffer{}
			encCfg := zap.NewDevelopmentEncoderConfig()
			encCfg.TimeKey = "" // digits of a timestamp must not look like a PIN
			core := zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), logs, zapcore.DebugLevel)
			log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)).Core()))
			e := f.New(t, log)
			if e == nil || e.Card == nil {
				t.Fatal("fixture returned no card")
			}
			t.Cleanup(func() {
				if err := e.Card.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.run(t, &state{f: f, e: e, logs: logs})
			if e.Writes != nil && !c.writes {
				if n := e.Writes(); n != 0 {
					t.Errorf("the card was written %d times; this case must not write", n)
				}
			}
		})
	}
}

// --- helpers ---------------------------------------------------------------

// pinSource hands out copies of a PIN and records every call, so a case can
// check that the driver asked once and zeroed what it got.
type pinSource struct {
	mu     sync.Mutex
	pin    []byte
	err    error
	given  [][]byte
	called int
}

func newPIN(pin []byte) *pinSource { return &pinSource{pin: bytes.Clone(pin)} }

func (p *pinSource) fn() pcsc.PINFunc {
	return func() ([]byte, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.called++
		if p.err != nil {
			return nil, p.err
		}
		b := bytes.Clone(p.pin)
		p.given = append(p.given, b)
		return b, nil
	}
}

func (p *pinSource) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.called
}

// checkZeroed fails if the driver did not clear a PIN it was given.
func (p *pinSource) checkZeroed(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.given {
		for _, c := range b {
			if c != 0 {
				t.Errorf("the driver did not zero the PIN bytes the PINFunc returned")
				return
			}
		}
	}
}

// wrongPIN returns a valid PIN of the same length that differs from pin in its last character.
func wrongPIN(pin []byte) []byte {
	w := bytes.Clone(pin)
	if w[len(w)-1] == '0' {
		w[len(w)-1] = '1'
	} else {
		w[len(w)-1] = '0'
	}
	return w
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func certFor(t *testing.T, s *state, ref pcsc.KeyRef) *x509.Certificate {
	t.Helper()
	certs, err := s.e.Card.Certificates(ctx(t))
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	for _, c := range certs {
		if c.Key == ref {
			return c.Cert
		}
	}
	t.Fatalf("no certificate for key %s", ref)
	return nil
}

// defaultAlg picks an algorithm for a key's certificate.
func defaultAlg(cert *x509.Certificate) Alg {
	if cert.PublicKeyAlgorithm == x509.ECDSA {
		return ECDSASHA256
	}
	return RSAPKCS1SHA256
}

// signWith signs a random digest with ref and pin; it returns the digest, signature and error.
func signWith(t *testing.T, s *state, ref pcsc.KeyRef, pin *pinSource, a Alg) (digest, sig []byte, err error) {
	t.Helper()
	key, err := s.e.Card.PrivateKey(ref, pin.fn())
	if err != nil {
		t.Fatalf("PrivateKey(%s): %v", ref, err)
	}
	h := a.Opts.HashFunc()
	digest = make([]byte, h.Size())
	rand.Read(digest)
	sig, err = key.Sign(rand.Reader, digest, a.Opts)
	return digest, sig, err
}

// verify checks sig over digest with pub for algorithm a.
func verify(pub crypto.PublicKey, a Alg, digest, sig []byte) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := a.Opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, pss.Hash, digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(pub, a.Opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected public key %T", pub)
}

// signOK signs with the correct PIN and verifies the signature with the certificate's key.
func signOK(t *testing.T, s *state, ref pcsc.KeyRef, pinBytes []byte) {
	t.Helper()
	cert := certFor(t, s, ref)
	a := defaultAlg(cert)
	pin := newPIN(pinBytes)
	digest, sig, err := signWith(t, s, ref, pin, a)
	if err != nil {
		t.Fatalf("Sign with key %s: %v", ref, err)
	}
	if err := verify(cert.PublicKey, a, digest, sig); err != nil {
		t.Fatalf("signature by key %s does not verify with its certificate: %v", ref, err)
	}
	if n := pin.calls(); n != 1 {
		t.Errorf("PINFunc called %d times for one signature, want 1", n)
	}
	pin.checkZeroed(t)
}

// signErr signs with pinBytes, which must fail, and returns the error (a
// *pcsc.AuthError for a wrong PIN: see wantAuthError); the PIN must have been
// asked for exactly once and zeroed.
func signErr(t *testing.T, s *state, pinBytes []byte) error {
	t.Helper()
	pin := newPIN(pinBytes)
	_, sig, err := signWith(t, s, pcsc.KeyAuthentication, pin, defaultAlg(certFor(t, s, pcsc.KeyAuthentication)))
	if err == nil {
		t.Fatalf("Sign succeeded (%d-byte signature), want an error", len(sig))
	}
	if n := pin.calls(); n != 1 {
		t.Errorf("PINFunc called %d times, want exactly 1", n)
	}
	pin.checkZeroed(t)
	return err
}

func wantAuthError(t *testing.T, err error, retries int, puk bool) {
	t.Helper()
	var ae *pcsc.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error %q (%T) is not a *pcsc.AuthError", err, err)
	}
	if ae.Retries != retries {
		t.Errorf("AuthError.Retries = %d, want %d", ae.Retries, retries)
	}
	if ae.PUK != puk {
		t.Errorf("AuthError.PUK = %v, want %v", ae.PUK, puk)
	}
}

func (s *state) tries(t *testing.T) int {
	t.Helper()
	if s.e.PINTries == nil {
		t.Skip("fixture has no PINTries ground truth")
	}
	return s.e.PINTries()
}

func (s *state) checkTries(t *testing.T, want int, when string) {
	t.Helper()
	if s.e.PINTries == nil {
		return
	}
	if got := s.e.PINTries(); got != want {
		t.Errorf("%s: card's PIN counter = %d, want %d", when, got, want)
	}
}

func (s *state) apdus() int {
	if s.e.APDUs == nil {
		return -1
	}
	return s.e.APDUs()
}

func (s *state) checkNoAPDU(t *testing.T, before int, what string) {
	t.Helper()
	if before < 0 {
		return
	}
	if n := s.e.APDUs() - before; n != 0 {
		t.Errorf("%s sent %d APDUs, want none", what, n)
	}
}

// --- cases -----------------------------------------------------------------

func testIdentity(t *testing.T, s *state) {
	info := s.e.Card.Info()
	if info.ID == "" || info.IDSource == "" {
		t.Fatalf("empty identity: ID %q, IDSource %q", info.ID, info.IDSource)
	}
	if info.Kind == "" || info.Kind == pcsc.KindUnknown {
		t.Errorf("Kind = %q", info.Kind)
	}
	if info.Driver == "" {
		t.Error("Driver is empty")
	}
	if again := s.e.Card.Info(); again.ID != info.ID || again.IDSource != info.IDSource {
		t.Errorf("identity changed between calls: %q then %q", info.ID, again.ID)
	}
	// Using the card does not change its identity.
	if _, err := s.e.Card.Certificates(ctx(t)); err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	if after := s.e.Card.Info(); after.ID != info.ID {
		t.Errorf("identity changed after reading certificates: %q then %q", info.ID, after.ID)
	}
	if s.e.Reopen != nil {
		other := s.e.Reopen(t)
		if got := other.Info(); got.ID != info.ID || got.IDSource != info.IDSource {
			t.Errorf("a second open gives identity %q (%s), first %q (%s)", got.ID, got.IDSource, info.ID, info.IDSource)
		}
	}
}

func testCertificates(t *testing.T, s *state) {
	certs, err := s.e.Card.Certificates(ctx(t))
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	seen := map[pcsc.KeyRef]*x509.Certificate{}
	for _, c := range certs {
		if c.Cert == nil {
			t.Errorf("key %s: nil certificate", c.Key)
			continue
		}
		if _, dup := seen[c.Key]; dup {
			t.Errorf("key %s listed twice", c.Key)
		}
		seen[c.Key] = c.Cert
		if _, err := x509.ParseCertificate(c.Cert.Raw); err != nil {
			t.Errorf("key %s: certificate does not parse again: %v", c.Key, err)
		}
	}
	for _, ref := range s.f.Keys {
		cert, ok := seen[ref]
		if !ok {
			t.Errorf("no certificate for key %s (have %d certificates)", ref, len(certs))
			continue
		}
		key, err := s.e.Card.PrivateKey(ref, newPIN(s.e.PIN).fn())
		if err != nil {
			t.Errorf("PrivateKey(%s): %v", ref, err)
			continue
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
			t.Errorf("key %s: Public() is not the certificate's public key", ref)
		}
		// The private key on the card matches the certificate.
		signOK(t, s, ref, s.e.PIN)
	}
	if _, err := s.e.Card.PrivateKey("no-such-key", newPIN(s.e.PIN).fn()); err == nil {
		t.Error("PrivateKey of an unknown reference succeeded")
	}
}

func testCertificatesCached(t *testing.T, s *state) {
	if s.e.APDUs == nil {
		t.Skip("fixture has no APDU counter")
	}
	first, err := s.e.Card.Certificates(ctx(t))
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	if len(first) == 0 {
		t.Fatal("no certificates")
	}
	before := s.apdus()
	for range 3 {
		again, err := s.e.Card.Certificates(ctx(t))
		if err != nil {
			t.Fatalf("Certificates again: %v", err)
		}
		if len(again) != len(first) {
			t.Fatalf("second read: %d certificates, first %d", len(again), len(first))
		}
		for i := range again {
			if again[i].Key != first[i].Key || !bytes.Equal(again[i].Cert.Raw, first[i].Cert.Raw) {
				t.Errorf("certificate %d differs between reads", i)
			}
		}
	}
	for _, ref := range s.f.Keys {
		if _, err := s.e.Card.PrivateKey(ref, newPIN(s.e.PIN).fn()); err != nil {
			t.Errorf("PrivateKey(%s): %v", ref, err)
		}
	}
	s.checkNoAPDU(t, before, "reading cached certificates and opening keys")
}

func testPINStatus(t *testing.T, s *state) {
	n := s.tries(t)
	for i := range 3 {
		st, err := s.e.Card.PINStatus(ctx(t))
		if err != nil {
			t.Fatalf("PINStatus: %v", err)
		}
		if st.Retries != n {
			t.Errorf("call %d: Retries = %d, card says %d", i+1, st.Retries, n)
		}
		if st.Blocked {
			t.Errorf("call %d: Blocked on a fresh card", i+1)
		}
		s.checkTries(t, n, fmt.Sprintf("after PINStatus call %d", i+1))
	}
}

func testSignCorrectPIN(t *testing.T, s *state) {
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	signOK(t, s, pcsc.KeyAuthentication, s.e.PIN)
	s.checkTries(t, n, "after a correct PIN")
	if s.f.SignOnly {
		return
	}
	st, err := s.e.Card.PINStatus(ctx(t))
	if err != nil {
		t.Fatalf("PINStatus: %v", err)
	}
	if st.Verified {
		t.Error("the PIN is still verified after Sign: the driver must reset the security state")
	}
	// A second signature asks for the PIN again.
	signOK(t, s, pcsc.KeyAuthentication, s.e.PIN)
}

func testAlgorithms(t *testing.T, s *state) {
	if len(s.f.Algorithms) == 0 {
		t.Fatal("the fixture lists no algorithms: every card signs with at least one")
	}
	for _, a := range s.f.Algorithms {
		t.Run(a.Name, func(t *testing.T) {
			ref := a.Key
			if ref == "" {
				ref = pcsc.KeyAuthentication
			}
			cert := certFor(t, s, ref)
			if a.KeyAlgorithm != 0 && cert.PublicKeyAlgorithm != a.KeyAlgorithm {
				t.Fatalf("key %s is %v, algorithm needs %v", ref, cert.PublicKeyAlgorithm, a.KeyAlgorithm)
			}
			pin := newPIN(s.e.PIN)
			digest, sig, err := signWith(t, s, ref, pin, a)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if err := verify(cert.PublicKey, a, digest, sig); err != nil {
				t.Fatalf("signature does not verify with the certificate's key: %v", err)
			}
			// A signature over another digest must not verify: the check can fail.
			other := bytes.Clone(digest)
			other[0] ^= 0xFF
			if verify(cert.PublicKey, a, other, sig) == nil {
				t.Fatal("signature verifies over a different digest")
			}
		})
	}
}

func testUnsupportedAlgorithm(t *testing.T, s *state) {
	cert := certFor(t, s, pcsc.KeyAuthentication)
	var opts crypto.SignerOpts = crypto.MD4
	if cert.PublicKeyAlgorithm == x509.ECDSA {
		opts = &rsa.PSSOptions{Hash: crypto.SHA256}
	}
	pin := newPIN(s.e.PIN)
	key, err := s.e.Card.PrivateKey(pcsc.KeyAuthentication, pin.fn())
	if err != nil {
		t.Fatalf("PrivateKey: %v", err)
	}
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	before := s.apdus()
	digest := make([]byte, opts.HashFunc().Size())
	_, err = key.Sign(rand.Reader, digest, opts)
	if !errors.Is(err, pcsc.ErrUnsupportedAlgorithm) {
		t.Fatalf("Sign with %T %v: %v, want ErrUnsupportedAlgorithm", opts, opts.HashFunc(), err)
	}
	if c := pin.calls(); c != 0 {
		t.Errorf("PINFunc called %d times for an algorithm the key cannot do, want 0", c)
	}
	s.checkNoAPDU(t, before, "an unsupported algorithm")
	s.checkTries(t, n, "after an unsupported algorithm")
}

// testSignCancelled: signing is bounded by its context (pcsc.Signer). With
// ctx already ended, SignContext fails with the context's error and the card
// sees no VERIFY: a wrong PIN costs no try.
func testSignCancelled(t *testing.T, s *state) {
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	cert := certFor(t, s, pcsc.KeyAuthentication)
	a := defaultAlg(cert)
	key, err := s.e.Card.PrivateKey(pcsc.KeyAuthentication, newPIN(wrongPIN(s.e.PIN)).fn())
	if err != nil {
		t.Fatalf("PrivateKey: %v", err)
	}
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	before := s.apdus()
	digest := make([]byte, a.Opts.HashFunc().Size())
	if _, err := key.SignContext(c, rand.Reader, digest, a.Opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("SignContext with an ended context: %v, want context.Canceled", err)
	}
	s.checkNoAPDU(t, before, "a cancelled signing")
	s.checkTries(t, n, "after a cancelled signing")
}

func testWrongPIN(t *testing.T, s *state) {
	n := s.tries(t)
	if n < 3 {
		t.Fatalf("fresh card has %d tries, need at least 3", n)
	}
	wrong := wrongPIN(s.e.PIN)
	for i := 1; i <= 2; i++ {
		err := signErr(t, s, wrong)
		wantAuthError(t, err, n-i, false)
		s.checkTries(t, n-i, fmt.Sprintf("after wrong PIN %d", i))
		if errors.Is(err, pcsc.ErrPINBlocked) {
			t.Errorf("wrong PIN %d with %d tries left matches ErrPINBlocked", i, n-i)
		}
		st, err := s.e.Card.PINStatus(ctx(t))
		if err != nil {
			t.Fatalf("PINStatus: %v", err)
		}
		if st.Retries != n-i || st.Blocked {
			t.Errorf("PINStatus after wrong PIN %d: %+v, want %d tries", i, st, n-i)
		}
	}
	// The correct PIN still works and restores the counter.
	signOK(t, s, pcsc.KeyAuthentication, s.e.PIN)
	s.checkTries(t, n, "after the correct PIN")
}

func testBlockedPIN(t *testing.T, s *state) {
	n := s.tries(t)
	wrong := wrongPIN(s.e.PIN)
	for i := 1; i <= n; i++ {
		err := signErr(t, s, wrong)
		if i < n {
			wantAuthError(t, err, n-i, false)
		} else if !errors.Is(err, pcsc.ErrPINBlocked) {
			// The blocking try: real cards answer 6983 (or 63C0); both are "blocked".
			t.Errorf("wrong PIN on the last try: %v, want ErrPINBlocked", err)
		}
		s.checkTries(t, n-i, fmt.Sprintf("after wrong PIN %d", i))
	}
	st, err := s.e.Card.PINStatus(ctx(t))
	if err != nil {
		t.Fatalf("PINStatus: %v", err)
	}
	if !st.Blocked || st.Retries != 0 {
		t.Errorf("PINStatus of a blocked card: %+v", st)
	}
	// Neither the correct PIN nor another wrong one gets through, and nothing unblocks.
	for _, p := range [][]byte{s.e.PIN, wrong} {
		err := signErr(t, s, p)
		if !errors.Is(err, pcsc.ErrPINBlocked) {
			t.Errorf("Sign on a blocked card: %v, want ErrPINBlocked", err)
		}
		s.checkTries(t, 0, "after a PIN on a blocked card")
	}
}

func testPINFormat(t *testing.T, s *state) {
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	puk := -1
	if s.e.PUKTries != nil {
		puk = s.e.PUKTries()
	}
	a := defaultAlg(certFor(t, s, pcsc.KeyAuthentication))
	for _, bad := range s.f.BadPINs {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			before := s.apdus()
			pin := newPIN(bad)
			key, err := s.e.Card.PrivateKey(pcsc.KeyAuthentication, pin.fn())
			if err != nil {
				t.Fatalf("PrivateKey: %v", err)
			}
			digest := make([]byte, a.Opts.HashFunc().Size())
			if _, err := key.Sign(rand.Reader, digest, a.Opts); !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("Sign: %v, want ErrPINFormat", err)
			}
			if c := pin.calls(); c != 1 {
				t.Errorf("PINFunc called %d times, want 1", c)
			}
			pin.checkZeroed(t)
			if s.f.Caps.ChangePIN {
				if err := s.e.Card.ChangePIN(ctx(t), s.e.PIN, bad); !errors.Is(err, pcsc.ErrPINFormat) {
					t.Errorf("ChangePIN to a bad PIN: %v, want ErrPINFormat", err)
				}
				if err := s.e.Card.ChangePIN(ctx(t), bad, s.e.PIN); !errors.Is(err, pcsc.ErrPINFormat) {
					t.Errorf("ChangePIN from a bad PIN: %v, want ErrPINFormat", err)
				}
			}
			if s.f.Caps.Unblock {
				if err := s.e.Card.UnblockPIN(ctx(t), s.e.PUK, bad); !errors.Is(err, pcsc.ErrPINFormat) {
					t.Errorf("UnblockPIN to a bad PIN: %v, want ErrPINFormat", err)
				}
			}
			s.checkNoAPDU(t, before, "a badly formatted PIN")
			s.checkTries(t, n, "after a badly formatted PIN")
		})
	}
	if s.f.Caps.Unblock {
		before := s.apdus()
		for _, bad := range [][]byte{[]byte("123"), []byte("123456789012")} {
			if err := s.e.Card.UnblockPIN(ctx(t), bad, s.f.NewPIN); !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("UnblockPIN with a %d-byte PUK: %v, want ErrPINFormat", len(bad), err)
			}
		}
		s.checkNoAPDU(t, before, "a badly formatted PUK")
		if s.e.PUKTries != nil {
			if got := s.e.PUKTries(); got != puk {
				t.Errorf("PUK counter %d after badly formatted PUKs, want %d", got, puk)
			}
		}
	}
}

func testChangePIN(t *testing.T, s *state) {
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	newP := s.f.NewPIN
	wrong := wrongPIN(s.e.PIN)
	err := s.e.Card.ChangePIN(ctx(t), wrong, newP)
	if n >= 0 {
		wantAuthError(t, err, n-1, false)
		s.checkTries(t, n-1, "after ChangePIN with a wrong old PIN")
	} else if err == nil {
		t.Fatal("ChangePIN with a wrong old PIN succeeded")
	}
	if err := s.e.Card.ChangePIN(ctx(t), s.e.PIN, newP); err != nil {
		t.Fatalf("ChangePIN: %v", err)
	}
	s.checkTries(t, n, "after ChangePIN")
	// The new PIN works, the old one no longer does.
	signOK(t, s, pcsc.KeyAuthentication, newP)
	err = signErr(t, s, s.e.PIN)
	if n >= 0 {
		wantAuthError(t, err, n-1, false)
	}
	signOK(t, s, pcsc.KeyAuthentication, newP)
	s.checkTries(t, n, "after the new PIN")
}

func testUnblockPIN(t *testing.T, s *state) {
	n := s.tries(t)
	newP := s.f.NewPIN
	wrong := wrongPIN(s.e.PIN)
	for i := 1; i <= n; i++ {
		signErr(t, s, wrong)
	}
	s.checkTries(t, 0, "after blocking")
	// A wrong PUK costs one PUK try and unblocks nothing.
	pukTries := -1
	if s.e.PUKTries != nil {
		pukTries = s.e.PUKTries()
	}
	err := s.e.Card.UnblockPIN(ctx(t), wrongPIN(s.e.PUK), newP)
	if pukTries >= 0 {
		wantAuthError(t, err, pukTries-1, true)
		if got := s.e.PUKTries(); got != pukTries-1 {
			t.Errorf("PUK counter %d after a wrong PUK, want %d", got, pukTries-1)
		}
	} else {
		var ae *pcsc.AuthError
		if !errors.As(err, &ae) || !ae.PUK {
			t.Fatalf("UnblockPIN with a wrong PUK: %v, want *AuthError with PUK", err)
		}
	}
	s.checkTries(t, 0, "after a wrong PUK")
	if err := s.e.Card.UnblockPIN(ctx(t), s.e.PUK, newP); err != nil {
		t.Fatalf("UnblockPIN: %v", err)
	}
	s.checkTries(t, n, "after UnblockPIN")
	signOK(t, s, pcsc.KeyAuthentication, newP)
	err = signErr(t, s, s.e.PIN)
	wantAuthError(t, err, n-1, false)
}

func testCardRemoved(t *testing.T, s *state) {
	if s.e.PullOnSign == nil {
		t.Skip("fixture cannot pull the card")
	}
	// Read what the key needs first, so only the signature is left for the pull.
	certFor(t, s, pcsc.KeyAuthentication)
	n := -1
	if s.e.PINTries != nil {
		n = s.e.PINTries()
	}
	ignore := goleak.IgnoreCurrent()
	s.e.PullOnSign()
	pin := newPIN(s.e.PIN)
	start := time.Now()
	_, _, err := signWith(t, s, pcsc.KeyAuthentication, pin, defaultAlg(certFor(t, s, pcsc.KeyAuthentication)))
	if !errors.Is(err, pcsc.ErrCardRemoved) && !errors.Is(err, pcsc.ErrCardUnresponsive) {
		t.Fatalf("Sign with the card pulled: %v, want ErrCardRemoved or ErrCardUnresponsive", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Sign took %v to report the removal", d)
	}
	if c := pin.calls(); c != 1 {
		t.Errorf("PINFunc called %d times, want exactly 1 (no retry)", c)
	}
	pin.checkZeroed(t)
	// The PIN was correct: no try was spent, even though the signature never came.
	s.checkTries(t, n, "after the pull")
	// A later operation fails cleanly too, without asking for a PIN again.
	pin2 := newPIN(s.e.PIN)
	if key, err := s.e.Card.PrivateKey(pcsc.KeyAuthentication, pin2.fn()); err == nil {
		if _, err := key.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err == nil {
			t.Error("Sign after the card was pulled succeeded")
		}
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left behind: %v", err)
	}
}

func testConcurrentSign(t *testing.T, s *state) {
	const workers = 4
	cert := certFor(t, s, pcsc.KeyAuthentication)
	a := defaultAlg(cert)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, err := s.e.Card.PrivateKey(pcsc.KeyAuthentication, newPIN(s.e.PIN).fn())
			if err != nil {
				errs <- err
				return
			}
			digest := make([]byte, a.Opts.HashFunc().Size())
			rand.Read(digest)
			sig, err := key.Sign(rand.Reader, digest, a.Opts)
			if err == nil {
				err = verify(cert.PublicKey, a, digest, sig)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Sign: %v", err)
		}
	}
}

// marker is a PIN that must never appear in an error or a log entry.
var marker = []byte("73196482")

func testSecretsNotLeaked(t *testing.T, s *state) {
	if bytes.Equal(marker, s.e.PIN) {
		t.Fatal("fixture PIN equals the marker")
	}
	var errs []error
	// A wrong PIN, a badly formatted one, and the marker as an old PIN and a PUK.
	errs = append(errs, signErr(t, s, marker))
	errs = append(errs, signErr(t, s, append(bytes.Clone(marker), '9')))
	if s.f.Caps.ChangePIN {
		errs = append(errs, s.e.Card.ChangePIN(ctx(t), marker, s.f.NewPIN))
		errs = append(errs, s.e.Card.ChangePIN(ctx(t), s.e.PIN, append(bytes.Clone(marker), '9')))
	}
	if s.f.Caps.Unblock && !bytes.Equal(marker, s.e.PUK) {
		errs = append(errs, s.e.Card.UnblockPIN(ctx(t), marker, s.e.PIN))
	}
	// And a correct PIN, which must not be logged either.
	signOK(t, s, pcsc.KeyAuthentication, s.e.PIN)

	forms := secretForms(marker)
	forms = append(forms, secretForms(s.e.PIN)...)
	for _, err := range errs {
		if err == nil {
			t.Error("an operation with a wrong secret succeeded")
			continue
		}
		if f, ok := containsAny(err.Error(), secretForms(marker)); ok {
			t.Errorf("error %q contains the PIN (%q)", err, f)
		}
	}
	logs := s.logs.String()
	if logs == "" {
		t.Log("the driver logged nothing at debug level")
	}
	for _, line := range strings.Split(logs, "\n") {
		if f, ok := containsAny(line, forms); ok {
			t.Errorf("log entry contains a PIN (%q): %s", f, line)
		}
	}
}

// secretForms are the ways a secret could show up in text: as is, hex in
// either case with or without spaces, base64 (zap.Binary), and a Go byte slice.
func secretForms(b []byte) []string {
	h := hex.EncodeToString(b)
	spaced := strings.TrimSpace(fmt.Sprintf("% x", b))
	return []string{string(b), h, strings.ToUpper(h), spaced, strings.ToUpper(spaced),
		base64.StdEncoding.EncodeToString(b), strings.Trim(fmt.Sprint(b), "[]")}
}

func containsAny(s string, subs []string) (string, bool) {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return sub, true
		}
	}
	return "", false
}
