package piv_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/piv"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

// The test PKI is made once per test binary (its keys come from testpki's cache).
var (
	pkiOnce sync.Once
	pkiVal  *testpki.PKI
	pkiErr  error
)

func testPKI(tb testing.TB) *testpki.PKI {
	tb.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = testpki.New() })
	if pkiErr != nil {
		tb.Fatalf("test PKI: %v", pkiErr)
	}
	return pkiVal
}

// creds issues (once per key type) the credentials of a test card.
var (
	credsMu    sync.Mutex
	credsCache = map[testpki.KeyType]*testpki.CardCreds{}
)

func cardCreds(tb testing.TB, kt testpki.KeyType) *testpki.CardCreds {
	tb.Helper()
	credsMu.Lock()
	defer credsMu.Unlock()
	if c, ok := credsCache[kt]; ok {
		return c
	}
	c, err := testPKI(tb).IssueCard(testpki.CardSpec{UUID: "999000000042", Surname: "Test", Forename: "Piv", DaysLeft: 400, KeyType: kt})
	if err != nil {
		tb.Fatalf("issuing card: %v", err)
	}
	credsCache[kt] = c
	return c
}

func newVCard(tb testing.TB, kt testpki.KeyType, adjust func(*vpiv.Config)) *vpiv.Card {
	tb.Helper()
	cfg := vpiv.NHSConfig(cardCreds(tb, kt))
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := vpiv.New(cfg)
	if err != nil {
		tb.Fatalf("vpiv.New: %v", err)
	}
	return c
}

// tracer wraps a Transmitter: it records every command APDU and can pull the
// card (every APDU from the first GENERAL AUTHENTICATE on fails as a pulled card does).
type tracer struct {
	t pcsc.Transmitter

	mu     sync.Mutex
	cmds   [][]byte
	armed  atomic.Bool
	pulled atomic.Bool
	// failAfter, when set, makes the APDU after one with this INS fail with a transport error.
	failINS byte
}

func (tr *tracer) Transmit(cmd []byte) ([]byte, error) {
	tr.mu.Lock()
	tr.cmds = append(tr.cmds, bytes.Clone(cmd))
	tr.mu.Unlock()
	if tr.armed.Load() && len(cmd) > 1 && cmd[1] == 0x87 {
		tr.pulled.Store(true)
	}
	if tr.pulled.Load() {
		return nil, pcsc.ErrCardRemoved
	}
	if tr.failINS != 0 && len(cmd) > 1 && cmd[1] == tr.failINS {
		return nil, pcsc.ErrCardUnresponsive
	}
	return tr.t.Transmit(cmd)
}

func (tr *tracer) commands() [][]byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([][]byte(nil), tr.cmds...)
}

func (tr *tracer) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.cmds = nil
}

// ins returns the INS bytes of the recorded commands as "A4 CB ..." for comparisons.
func (tr *tracer) ins() string {
	var b []string
	for _, c := range tr.commands() {
		b = append(b, strings.ToUpper(hex.EncodeToString(c[1:2])))
	}
	return strings.Join(b, " ")
}

func openLocal(tb testing.TB, card *vpiv.Card, log *zap.Logger) (*piv.Card, *tracer) {
	tb.Helper()
	tr := &tracer{t: card}
	s := &pcsc.LocalSession{T: tr, ReaderName: "in-process", CardATR: card.ATR()}
	if log == nil {
		log = zaptest.NewLogger(tb, zaptest.Level(zapcore.InfoLevel))
	}
	c, err := piv.Open(context.Background(), s, log)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return c, tr
}

// mixedCard adds ECDSA keys to an RSA card: P-256 in 9D and P-384 in 9E (no
// PIN), so one card covers both key families.
func mixedCard(t testing.TB) func(*vpiv.Config) {
	p256, p384 := cardCreds(t, testpki.P256), cardCreds(t, testpki.P384)
	return func(c *vpiv.Config) {
		c.Slots[vpiv.SlotKeyManagement] = vpiv.Slot{Cert: p256.AuthCert, Key: p256.AuthKey}
		c.Slots[vpiv.SlotCardAuthentication] = vpiv.Slot{Cert: p384.AuthCert, Key: p384.AuthKey, Compress: true}
	}
}

func localFixture(name string, kt testpki.KeyType, algs []cardtest.Alg) cardtest.Fixture {
	return cardtest.Fixture{
		Name: name,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			kt, adjust := kt, func(*vpiv.Config) {}
			if kt == mixed {
				kt, adjust = testpki.RSA2048, mixedCard(t)
			}
			card := newVCard(t, kt, adjust)
			c, tr := openLocal(t, card, log)
			return &cardtest.Env{
				Card:       c,
				PIN:        []byte(vpiv.DefaultPIN),
				PUK:        []byte(vpiv.DefaultPUK),
				PINTries:   card.PINTries,
				PUKTries:   card.PUKTries,
				PullOnSign: func() { tr.armed.Store(true) },
				Writes:     card.WriteCount,
				APDUs:      card.APDUCount,
				Reopen: func(t *testing.T) pcsc.Card {
					c2, _ := openLocal(t, card, log)
					t.Cleanup(func() { c2.Close() })
					return c2
				},
			}
		},
		Algorithms: algs,
		Caps:       cardtest.Caps{ChangePIN: true, Unblock: true},
	}
}

// mixed is the key type of an RSA-2048 card with ECDSA keys in 9D and 9E (see mixedCard).
const mixed testpki.KeyType = "mixed"

// Algorithms per key type.
var (
	rsa2048Algs = append(append(cardtest.RSAAlgorithms(), cardtest.RSAPKCS1SHA1, cardtest.RSAPSSSHA256Auto, cardtest.RSAPSSSHA512),
		cardtest.OnKey(pcsc.KeySignature, cardtest.RSAPKCS1SHA256, cardtest.RSAPSSSHA256)...)
	rsa1024Algs = append([]cardtest.Alg{cardtest.RSAPKCS1SHA1, cardtest.RSAPKCS1SHA256, cardtest.RSAPKCS1SHA512, cardtest.RSAPSSSHA256},
		cardtest.OnKey(pcsc.KeySignature, cardtest.RSAPKCS1SHA256)...)
	p256Algs = append([]cardtest.Alg{cardtest.ECDSASHA256, cardtest.ECDSASHA384, cardtest.ECDSASHA512},
		cardtest.OnKey(pcsc.KeySignature, cardtest.ECDSASHA256)...)
	mixedAlgs = append(append(slices.Clone(rsa2048Algs), cardtest.OnKey("9d", cardtest.ECDSASHA256, cardtest.ECDSASHA384)...),
		cardtest.OnKey("9e", cardtest.ECDSASHA384, cardtest.ECDSASHA256)...)
	p384Algs = append([]cardtest.Alg{cardtest.ECDSASHA384, cardtest.ECDSASHA256, cardtest.ECDSASHA512},
		cardtest.OnKey(pcsc.KeySignature, cardtest.ECDSASHA384)...)
)

func TestConformanceLocal(t *testing.T) {
	for _, f := range []cardtest.Fixture{
		localFixture("rsa2048", testpki.RSA2048, rsa2048Algs),
		localFixture("mixed", mixed, mixedAlgs),
		localFixture("rsa1024", testpki.RSA1024, rsa1024Algs),
		localFixture("p256", testpki.P256, p256Algs),
		localFixture("p384", testpki.P384, p384Algs),
	} {
		t.Run(f.Name, func(t *testing.T) { cardtest.Run(t, f) })
	}
}

// TestAPDUSequences pins the exact commands each operation sends: nothing
// that is not needed, a SELECT first in every transaction, the PIN reset last.
func TestAPDUSequences(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	c, tr := openLocal(t, card, nil)
	// Open: SELECT, GET DATA CHUID.
	if got, want := tr.ins(), "A4 CB"; got != want {
		t.Errorf("Open sent %s, want %s", got, want)
	}
	cmds := tr.commands()
	if want := "00a404000ba00000030800001000010000"; hex.EncodeToString(cmds[0]) != want {
		t.Errorf("SELECT = % X", cmds[0])
	}
	if want := "00cb3fff055c035fc10200"; hex.EncodeToString(cmds[1]) != want {
		t.Errorf("GET DATA CHUID = % X", cmds[1])
	}
	info := c.Info()
	if info.ID != hex.EncodeToString(card.GUID()) || info.IDSource != piv.IDSourceGUID {
		t.Errorf("identity %q (%s), want the CHUID GUID %x", info.ID, info.IDSource, card.GUID())
	}
	if info.Kind != pcsc.KindPIV || info.Driver != "piv" || !strings.Contains(info.Applet, "NHS TEST PIV") {
		t.Errorf("info %+v", info)
	}

	// Certificates: SELECT, key history (absent), 9A, 9C, 9D, 9E: each certificate
	// is longer than 256 bytes, so each present one takes GET RESPONSE (C0) too.
	tr.reset()
	certs, err := c.Certificates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[0].Key != "9a" || certs[1].Key != "9c" {
		t.Fatalf("certificates %v", certs)
	}
	got := tr.ins()
	if !strings.HasPrefix(got, "A4 CB CB") || strings.Count(got, "CB") != 5 {
		t.Errorf("Certificates sent %s: want SELECT, then GET DATA for key history, 9A, 9C, 9D, 9E", got)
	}
	tr.reset()
	if _, err := c.Certificates(context.Background()); err != nil || tr.ins() != "" {
		t.Errorf("cached Certificates sent %q (err %v)", tr.ins(), err)
	}

	// PIN status: SELECT, empty VERIFY.
	tr.reset()
	if _, err := c.PINStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tr.ins(); got != "A4 20" {
		t.Errorf("PINStatus sent %s, want A4 20", got)
	}
	if v := tr.commands()[1]; !bytes.Equal(v, []byte{0x00, 0x20, 0x00, 0x80}) {
		t.Errorf("empty VERIFY = % X", v)
	}

	// Sign: SELECT, VERIFY, GENERAL AUTHENTICATE (chained: 2 parts), VERIFY P1=FF.
	key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte("123456"), nil })
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	digest := sha256.Sum256([]byte("hello"))
	if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	cmds = tr.commands()
	if got := tr.ins(); got != "A4 20 87 87 C0 20" {
		t.Errorf("Sign sent %s, want A4 20 87 87 C0 20", got)
	}
	if v := cmds[1]; !bytes.Equal(v, []byte{0x00, 0x20, 0x00, 0x80, 0x08, '1', '2', '3', '4', '5', '6', 0xFF, 0xFF}) {
		t.Errorf("VERIFY = % X", v)
	}
	if v := cmds[2]; v[0] != 0x10 || v[2] != 0x07 || v[3] != 0x9A {
		t.Errorf("first GENERAL AUTHENTICATE part = % X...", v[:5])
	}
	if v := cmds[len(cmds)-1]; !bytes.Equal(v, []byte{0x00, 0x20, 0xFF, 0x80}) {
		t.Errorf("last command = % X, want the PIN reset 00 20 FF 80", v)
	}
	if card.Verified() {
		t.Error("the PIN is still verified on the card after Sign")
	}
}

// TestNoYubiKeyInstructions: the emulator refuses YubiKey extensions and the
// driver never sends them, whatever it does.
func TestNoYubiKeyInstructions(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	for _, ins := range []byte{0xFD, 0xF8, 0xF7, 0xF9} {
		resp, _ := card.Transmit([]byte{0x00, ins, 0x00, 0x00, 0x00})
		if !bytes.Equal(resp, []byte{0x6D, 0x00}) {
			t.Errorf("emulator answers INS %02X with % X, want 6D00", ins, resp)
		}
	}
	card.ClearLog()
	c, _ := openLocal(t, card, nil)
	ctx := context.Background()
	if _, err := c.Certificates(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PINStatus(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []pcsc.KeyRef{pcsc.KeyAuthentication, pcsc.KeySignature} {
		key, err := c.PrivateKey(ref, func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		if _, err := key.Sign(rand.Reader, d[:], &rsa.PSSOptions{Hash: crypto.SHA256}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ChangePIN(ctx, []byte(vpiv.DefaultPIN), []byte("654321")); err != nil {
		t.Fatal(err)
	}
	if err := c.UnblockPIN(ctx, []byte(vpiv.DefaultPUK), []byte("123456")); err != nil {
		t.Fatal(err)
	}
	log := card.INSLog()
	if len(log) == 0 {
		t.Fatal("empty INS log")
	}
	for _, ins := range log {
		switch ins {
		case 0xA4, 0xCB, 0xC0, 0x20, 0x24, 0x2C, 0x87:
		default:
			t.Errorf("driver sent INS %02X", ins)
		}
	}
	if card.WriteCount() != 0 {
		t.Errorf("WriteCount = %d", card.WriteCount())
	}
}

func TestIdentityFallback(t *testing.T) {
	fascn, err := vpiv.EncodeFASCN("0123-4567-890123-1-1-1234567890-1-1234-1")
	if err != nil {
		t.Fatal(err)
	}
	creds := cardCreds(t, testpki.RSA2048)
	authSum := sha256.Sum256(creds.AuthCert.Raw)
	chuidNoGUID := pcsc.AppendTLV(nil, 0x53, append(pcsc.AppendTLV(nil, 0x30, fascn), pcsc.AppendTLV(pcsc.AppendTLV(nil, 0x34, make([]byte, 16)), 0xFE, nil)...))
	tests := []struct {
		name       string
		objects    map[uint32][]byte
		wantID     string
		wantSource string
		wantINS    string
	}{
		{"guid", nil, "", piv.IDSourceGUID, "A4 CB"},
		{"fascn when the GUID is zero", map[uint32][]byte{vpiv.TagCHUID: chuidNoGUID}, hex.EncodeToString(fascn), piv.IDSourceFASCN, "A4 CB"},
		{"certificate without CHUID", map[uint32][]byte{vpiv.TagCHUID: nil}, hex.EncodeToString(authSum[:]), piv.IDSourceCertificate, "A4 CB CB C0+"},
		{"certificate when the CHUID is garbage", map[uint32][]byte{vpiv.TagCHUID: {0x53, 0x05, 0x01}}, hex.EncodeToString(authSum[:]), piv.IDSourceCertificate, "A4 CB CB C0+"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := newVCard(t, testpki.RSA2048, func(c *vpiv.Config) { c.Objects = tt.objects })
			c, tr := openLocal(t, card, nil)
			info := c.Info()
			want := tt.wantID
			if want == "" {
				want = hex.EncodeToString(card.GUID())
			}
			if info.ID != want || info.IDSource != tt.wantSource {
				t.Errorf("ID %q (%s), want %q (%s)", info.ID, info.IDSource, want, tt.wantSource)
			}
			if got := tr.ins(); !regexp.MustCompile("^" + strings.ReplaceAll(tt.wantINS, " C0+", "( C0)+") + "$").MatchString(got) {
				t.Errorf("Open sent %s, want %s", got, tt.wantINS)
			}
			// The 9A certificate read at Open is not read again.
			tr.reset()
			certs, err := c.Certificates(context.Background())
			if err != nil || len(certs) != 2 {
				t.Fatalf("Certificates: %v, %d", err, len(certs))
			}
			if n := strings.Count(tr.ins(), "CB"); tt.wantSource == piv.IDSourceCertificate && n != 4 {
				t.Errorf("Certificates sent %d GET DATA after the 9A certificate was read at Open, want 4", n)
			}
		})
	}
}

func TestOpenNotPIV(t *testing.T) {
	s := &pcsc.LocalSession{T: transmitFunc(func([]byte) ([]byte, error) { return []byte{0x6A, 0x82}, nil })}
	_, err := piv.Open(context.Background(), s, zaptest.NewLogger(t))
	if !errors.Is(err, pcsc.ErrUnsupportedCard) {
		t.Fatalf("Open of a card without PIV: %v, want ErrUnsupportedCard", err)
	}
}

// TestSelectRefusedAfterOpen: a card Open accepted that later refuses the
// PIV SELECT is a card fault (*pcsc.StatusError), not an unsupported card,
// and nothing is sent after the refused SELECT.
func TestSelectRefusedAfterOpen(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	var refusing atomic.Bool
	var after int
	s := &pcsc.LocalSession{T: transmitFunc(func(cmd []byte) ([]byte, error) {
		if refusing.Load() {
			after++
			if cmd[1] == 0xA4 {
				return []byte{0x6A, 0x82}, nil
			}
		}
		return card.Transmit(cmd)
	})}
	c, err := piv.Open(context.Background(), s, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	refusing.Store(true)
	pin := []byte("123456")
	ops := map[string]func() error{
		"certificates": func() error { _, err := c.Certificates(context.Background()); return err },
		"PIN status":   func() error { _, err := c.PINStatus(context.Background()); return err },
		"change PIN":   func() error { return c.ChangePIN(context.Background(), pin, []byte("654321")) },
	}
	for name, op := range ops {
		after = 0
		err := op()
		var se *pcsc.StatusError
		if !errors.As(err, &se) || se.SW != 0x6A82 || errors.Is(err, pcsc.ErrUnsupportedCard) {
			t.Errorf("%s: %v, want a StatusError 6A82 that is not ErrUnsupportedCard", name, err)
		}
		if after != 1 {
			t.Errorf("%s: %d APDUs, want only the refused SELECT", name, after)
		}
	}
	if card.PINTries() != 3 || card.WriteCount() != 0 {
		t.Errorf("card changed: %d tries, %d writes", card.PINTries(), card.WriteCount())
	}
}

type transmitFunc func([]byte) ([]byte, error)

func (f transmitFunc) Transmit(b []byte) ([]byte, error) { return f(b) }

// TestCertificateVariants: compressed containers, retired slots listed in the
// key history (and only those read), a broken certificate skipped with a warning.
func TestCertificateVariants(t *testing.T) {
	creds := cardCreds(t, testpki.RSA2048)
	p256 := cardCreds(t, testpki.P256)
	card := newVCard(t, testpki.RSA2048, func(c *vpiv.Config) {
		c.Slots[0x9A] = vpiv.Slot{Cert: creds.AuthCert, Key: creds.AuthKey, Compress: true}
		c.Slots[0x9E] = vpiv.Slot{Cert: p256.AuthCert, Key: p256.AuthKey}
		c.Slots[0x82] = vpiv.Slot{Cert: p256.SignCert, Compress: true}
		c.Slots[0x83] = vpiv.Slot{Cert: creds.SignCert}
		// 9D holds a container whose certificate does not parse.
		c.Objects = map[uint32][]byte{vpiv.TagCert9D: pcsc.AppendTLV(nil, 0x53, append(pcsc.AppendTLV(nil, 0x70, []byte{0x30, 0x03, 0x01, 0x01, 0xFF}), 0x71, 0x01, 0x00))}
	})
	core, logs := observer.New(zapcore.DebugLevel)
	c, tr := openLocal(t, card, zap.New(core))
	tr.reset()
	certs, err := c.Certificates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, cert := range certs {
		refs = append(refs, string(cert.Key))
	}
	if got := strings.Join(refs, " "); got != "9a 9c 9e 82 83" {
		t.Errorf("certificates in %s, want 9a 9c 9e 82 83", got)
	}
	if !bytes.Equal(certs[0].Cert.Raw, creds.AuthCert.Raw) || !bytes.Equal(certs[3].Cert.Raw, p256.SignCert.Raw) {
		t.Error("decompressed certificates differ from the originals")
	}
	// SELECT + key history + 4 primary + 2 retired GET DATA; no probing of 84..95.
	if n := strings.Count(tr.ins(), "CB"); n != 7 {
		t.Errorf("Certificates sent %d GET DATA (%s), want 7", n, tr.ins())
	}
	if logs.FilterMessageSnippet("skipping").FilterField(zap.String("slot", "9d")).Len() != 1 {
		t.Errorf("no warning for the broken 9D certificate: %v", logs.All())
	}
	// 9E needs no PIN: the PINFunc is not called.
	key, err := c.PrivateKey("9e", func() ([]byte, error) { t.Error("PINFunc called for 9E"); return nil, errors.New("no") })
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("card auth"))
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(p256.AuthCert.PublicKey.(*ecdsa.PublicKey), d[:], sig) {
		t.Error("9E signature does not verify")
	}
	// A certificate without a key on the card: signing fails with the card's status, not a panic.
	key, err = c.PrivateKey("82", func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, pcsc.ErrNotFound) {
		t.Errorf("Sign with a key that is not on the card: %v, want ErrNotFound", err)
	}
	if card.Verified() {
		t.Error("PIN left verified after a failed GENERAL AUTHENTICATE")
	}
	if _, err := c.PrivateKey("9d", nil); !errors.Is(err, pcsc.ErrNotFound) {
		t.Errorf("PrivateKey of a slot without a usable certificate: %v, want ErrNotFound", err)
	}
	if _, err := c.PrivateKey("42", nil); !errors.Is(err, pcsc.ErrNotFound) {
		t.Errorf("PrivateKey(42): %v, want ErrNotFound", err)
	}
}

// TestNoResendAfterTransportError: a transport error at VERIFY is returned as is;
// nothing follows it (no second VERIFY, no GENERAL AUTHENTICATE, no reset).
func TestNoResendAfterTransportError(t *testing.T) {
	for _, ins := range []byte{0x20, 0x87} {
		t.Run(hex.EncodeToString([]byte{ins}), func(t *testing.T) {
			card := newVCard(t, testpki.RSA2048, nil)
			c, tr := openLocal(t, card, nil)
			key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
			if err != nil {
				t.Fatal(err)
			}
			tr.reset()
			tr.failINS = ins
			d := sha256.Sum256(nil)
			_, err = key.Sign(rand.Reader, d[:], crypto.SHA256)
			if !errors.Is(err, pcsc.ErrCardUnresponsive) {
				t.Fatalf("Sign: %v, want ErrCardUnresponsive", err)
			}
			got := tr.ins()
			want := map[byte]string{0x20: "A4 20", 0x87: "A4 20 87"}[ins]
			if got != want {
				t.Errorf("sent %s, want %s and nothing after the failure", got, want)
			}
		})
	}
}

// TestSignErrors covers the typed errors of Sign that the conformance suite does not.
func TestSignErrors(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	c, tr := openLocal(t, card, nil)
	errCancel := errors.New("user cancelled")
	key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return nil, errCancel })
	if err != nil {
		t.Fatal(err)
	}
	tr.reset()
	d := sha256.Sum256(nil)
	if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, errCancel) {
		t.Errorf("Sign with a failing PINFunc: %v", err)
	}
	if tr.ins() != "" {
		t.Errorf("sent %s after the PINFunc failed", tr.ins())
	}
	good, _ := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
	for _, tt := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
		want   error
	}{
		{"md5", make([]byte, 16), crypto.MD5, pcsc.ErrUnsupportedAlgorithm},
		{"pss sha1", make([]byte, 20), &rsa.PSSOptions{Hash: crypto.SHA1}, pcsc.ErrUnsupportedAlgorithm},
		{"pss bad salt", make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: -7}, pcsc.ErrUnsupportedAlgorithm},
		{"pss salt too long", make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 250}, pcsc.ErrUnsupportedAlgorithm},
		{"nil opts", make([]byte, 32), nil, pcsc.ErrUnsupportedAlgorithm},
		{"short digest", make([]byte, 31), crypto.SHA256, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr.reset()
			_, err := good.Sign(rand.Reader, tt.digest, tt.opts)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Sign: %v, want %v", err, tt.want)
			}
			if tr.ins() != "" {
				t.Errorf("sent %s", tr.ins())
			}
		})
	}
	// A prepared DigestInfo (crypto.Hash(0)) signs as crypto/rsa does.
	prefix, _ := hex.DecodeString("3031300d060960864801650304020105000420")
	di := append(prefix, d[:]...)
	sig, err := good.Sign(rand.Reader, di, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(good.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Errorf("hash-0 signature: %v", err)
	}
}

// TestBlockedPUK: a blocked PUK is ErrPUKBlocked.
func TestBlockedPUK(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, func(c *vpiv.Config) { c.PUKTriesLeft = -1 })
	c, _ := openLocal(t, card, nil)
	err := c.UnblockPIN(context.Background(), []byte(vpiv.DefaultPUK), []byte("654321"))
	if !errors.Is(err, pcsc.ErrPUKBlocked) {
		t.Fatalf("UnblockPIN with a blocked PUK: %v", err)
	}
	card2 := newVCard(t, testpki.RSA2048, func(c *vpiv.Config) { c.PUKTriesLeft = 1 })
	c2, _ := openLocal(t, card2, nil)
	err = c2.UnblockPIN(context.Background(), []byte("87654321"), []byte("654321"))
	// The blocking try is answered 6983, as real cards do.
	if !errors.Is(err, pcsc.ErrPUKBlocked) {
		t.Fatalf("last wrong PUK: %v", err)
	}
}

// TestCancelledContext: a cancelled context sends nothing and matches ErrCancelled.
func TestCancelledContext(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	c, tr := openLocal(t, card, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr.reset()
	if _, err := c.PINStatus(ctx); !errors.Is(err, pcsc.ErrCancelled) {
		t.Errorf("PINStatus: %v, want ErrCancelled", err)
	}
	if tr.ins() != "" {
		t.Errorf("sent %s", tr.ins())
	}
}

// The public key of a key is its certificate's.
func TestPublicKeyFromCertificate(t *testing.T) {
	for _, kt := range testpki.KeyTypes {
		card := newVCard(t, kt, nil)
		c, _ := openLocal(t, card, nil)
		key, err := c.PrivateKey(pcsc.KeySignature, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(card.Certificate(0x9C).PublicKey) {
			t.Errorf("%s: public key differs from the 9C certificate's", kt)
		}
		var _ *x509.Certificate = card.Certificate(0x9C)
	}
}

// refuse answers GET DATA for the listed objects with a status word instead of the card's answer.
type refuse struct {
	t  pcsc.Transmitter
	sw map[uint32]uint16
}

func (r refuse) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && cmd[1] == 0xCB && cmd[5] == 0x5C && cmd[6] == 0x03 {
		tag := uint32(cmd[7])<<16 | uint32(cmd[8])<<8 | uint32(cmd[9])
		if sw, ok := r.sw[tag]; ok {
			return []byte{byte(sw >> 8), byte(sw)}, nil
		}
	}
	return r.t.Transmit(cmd)
}

// TestCardRefusals: an unexpected status for the CHUID, the key history or one
// certificate degrades (identity from the certificate, slot skipped) instead of failing.
func TestCardRefusals(t *testing.T) {
	creds := cardCreds(t, testpki.RSA2048)
	card := newVCard(t, testpki.RSA2048, func(c *vpiv.Config) {
		c.Slots[0x82] = vpiv.Slot{Cert: creds.SignCert}
	})
	s := &pcsc.LocalSession{T: refuse{t: card, sw: map[uint32]uint16{
		vpiv.TagCHUID: 0x6982, vpiv.TagKeyHistory: 0x6A80, vpiv.TagCert9C: 0x6982,
	}}}
	core, logs := observer.New(zapcore.WarnLevel)
	c, err := piv.Open(context.Background(), s, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if c.Info().IDSource != piv.IDSourceCertificate {
		t.Errorf("identity from %s, want the certificate", c.Info().IDSource)
	}
	certs, err := c.Certificates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].Key != pcsc.KeyAuthentication {
		t.Errorf("certificates %v, want 9A only (9C refused, retired slots unknown)", certs)
	}
	if logs.Len() != 3 {
		t.Errorf("%d warnings, want 3 (CHUID, key history, 9C): %v", logs.Len(), logs.All())
	}
	// A transport error is not degraded: the read fails and is not cached.
	tr := &tracer{t: card, failINS: 0xCB}
	c2, err := piv.Open(context.Background(), &pcsc.LocalSession{T: tr}, zap.NewNop())
	if !errors.Is(err, pcsc.ErrCardUnresponsive) || c2 != nil {
		t.Fatalf("Open with a failing transport: %v", err)
	}
}
