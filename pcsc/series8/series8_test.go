package series8_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/series8"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
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
		tb.Fatal(pkiErr)
	}
	return pkiVal
}

// newVCard makes a virtual series 8 card holding an NHS-style certificate pair.
func newVCard(tb testing.TB, kt testpki.KeyType, edit func(*vseries8.Config)) (*vseries8.Card, *testpki.CardCreds) {
	tb.Helper()
	creds, err := testPKI(tb).IssueCard(testpki.CardSpec{UUID: "555253521108", Surname: "Random", Forename: "UserQ", DaysLeft: 400, KeyType: kt})
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := vseries8.NHSConfig(creds)
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	card, err := vseries8.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return card, creds
}

// faultTransmitter is the in-process "reader": it can pull the card when a
// given instruction arrives, after which every APDU fails as on a real reader.
type faultTransmitter struct {
	card    *vseries8.Card
	pullINS atomic.Int32 // 0: none; otherwise INS+1
	after   atomic.Bool  // pull after the card processed the APDU (the answer is lost)
	pulled  atomic.Bool
}

func (f *faultTransmitter) Transmit(cmd []byte) ([]byte, error) {
	if f.pulled.Load() {
		return nil, pcsc.ErrCardRemoved
	}
	if ins := f.pullINS.Load(); ins != 0 && len(cmd) > 1 && int32(cmd[1])+1 == ins {
		f.pulled.Store(true)
		if f.after.Load() {
			f.card.Transmit(cmd)
		}
		return nil, pcsc.ErrCardRemoved
	}
	return f.card.Transmit(cmd)
}

func localSession(card *vseries8.Card) (*pcsc.LocalSession, *faultTransmitter) {
	ft := &faultTransmitter{card: card}
	return &pcsc.LocalSession{T: ft, ReaderName: "Virtual series 8", CardATR: card.ATR()}, ft
}

func open(tb testing.TB, s pcsc.Session, opts ...series8.Option) *series8.Card {
	tb.Helper()
	c, err := series8.Open(context.Background(), s, zaptest.NewLogger(tb), opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func pinFunc(pin string) pcsc.PINFunc {
	return func() ([]byte, error) { return []byte(pin), nil }
}

var rsaAlgs = append([]cardtest.Alg{cardtest.RSAPKCS1SHA1, cardtest.RSAPKCS1SHA256, cardtest.RSAPKCS1SHA384, cardtest.RSAPKCS1SHA512},
	cardtest.OnKey(pcsc.KeySignature, cardtest.RSAPKCS1SHA256, cardtest.RSAPKCS1SHA1)...)

func localFixture(name string, kt testpki.KeyType, edit func(*vseries8.Config)) cardtest.Fixture {
	return cardtest.Fixture{
		Name: name,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			card, _ := newVCard(t, kt, edit)
			s, ft := localSession(card)
			c, err := series8.Open(context.Background(), s, log)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return &cardtest.Env{
				Card:       c,
				PIN:        []byte(vseries8.DefaultPIN),
				PUK:        []byte(vseries8.DefaultPUK),
				PINTries:   card.PINTries,
				PUKTries:   card.PUKTries,
				PullOnSign: func() { ft.pullINS.Store(0x2A + 1) },
				Writes:     card.WriteCount,
				APDUs:      card.APDUCount,
				Reopen: func(t *testing.T) pcsc.Card {
					s2, _ := localSession(card)
					c2, err := series8.Open(context.Background(), s2, log)
					if err != nil {
						t.Fatalf("second Open: %v", err)
					}
					t.Cleanup(func() { c2.Close() })
					return c2
				},
			}
		},
		Algorithms: rsaAlgs,
		Caps:       cardtest.Caps{ChangePIN: true, Unblock: true},
	}
}

// TestConformance runs the shared driver suite in-process.
func TestConformance(t *testing.T) {
	for _, f := range []cardtest.Fixture{
		localFixture("rsa2048", testpki.RSA2048, nil),
		localFixture("rsa1024", testpki.RSA1024, nil),
		localFixture("object-lists", testpki.RSA2048, func(c *vseries8.Config) { c.NoContainers = true; c.CertSlack = 300 }),
		localFixture("no-cplc", testpki.RSA2048, func(c *vseries8.Config) { c.NoCPLC = true }),
	} {
		t.Run(f.Name, func(t *testing.T) { cardtest.Run(t, f) })
	}
}

func TestOpenApplets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		aid     []byte
		want    string
		wantErr error
	}{
		{"AuthentIC v2.2", vseries8.AIDAuthentIC, "AuthentIC v2.2 a0000000770103030000" + "00f100000002", nil},
		{"AuthentIC v3.1", vseries8.AIDAuthentICv3, "AuthentIC v3.1 a0000000770100700a1000f100000100", nil},
		{"IAS-ECC", vseries8.AIDIASECC, "IAS-ECC a000000077010800070000fe00000100", nil},
		{"PIV card", []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}, "", pcsc.ErrUnsupportedCard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.AID = tc.aid })
			s, _ := localSession(card)
			c, err := series8.Open(context.Background(), s, zaptest.NewLogger(t))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info := c.Info()
			if info.Applet != tc.want || info.Kind != pcsc.KindSeries8 || info.Driver != "series8" {
				t.Errorf("Info = %+v, want applet %q", info, tc.want)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	t.Run("cplc", func(t *testing.T) {
		card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.Serial = [4]byte{0xDE, 0xAD, 0xBE, 0xEF} })
		s, _ := localSession(card)
		c := open(t, s)
		if info := c.Info(); info.ID != "deadbeef" || info.IDSource != series8.IDSourceCPLC {
			t.Errorf("identity %q from %q", info.ID, info.IDSource)
		}
		// Open reads no certificate when the CPLC identifies the card:
		// card manager, CPLC, applet, 3F00, 5011.
		if n := card.APDUCount(); n != 5 {
			t.Errorf("Open sent %d APDUs, want 5", n)
		}
	})
	t.Run("certificate", func(t *testing.T) {
		card, creds := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.NoCPLC = true })
		s, _ := localSession(card)
		c := open(t, s)
		sum := sha256.Sum256(creds.AuthCert.Raw)
		if info := c.Info(); info.ID != hex.EncodeToString(sum[:]) || info.IDSource != series8.IDSourceCertificate {
			t.Errorf("identity %q from %q", info.ID, info.IDSource)
		}
		// The certificates read at Open are cached.
		before := card.APDUCount()
		certs, err := c.Certificates(context.Background())
		if err != nil || len(certs) != 2 {
			t.Fatalf("Certificates: %d, %v", len(certs), err)
		}
		if card.APDUCount() != before {
			t.Error("Certificates read the card again after Open read them")
		}
	})
	t.Run("awp missing", func(t *testing.T) {
		s := &pcsc.LocalSession{T: appletOnly{}, CardATR: vseries8.ATRCosmoV7}
		_, err := series8.Open(context.Background(), s, zaptest.NewLogger(t))
		if !errors.Is(err, pcsc.ErrUnsupportedCard) || !strings.Contains(err.Error(), "AWP") {
			t.Fatalf("Open: %v, want ErrUnsupportedCard naming the AWP directory", err)
		}
	})
}

// countingSession counts transactions.
type countingSession struct {
	pcsc.Session
	n int
}

func (s *countingSession) Transact(ctx context.Context, fn func(t pcsc.Transmitter) error) error {
	s.n++
	return s.Session.Transact(ctx, fn)
}

// appletOnly answers SELECT by name and nothing else (6A82).
type appletOnly struct{}

func (appletOnly) Transmit(cmd []byte) ([]byte, error) {
	if cmd[1] == 0xA4 && cmd[2] == 0x04 {
		return []byte{0x90, 0x00}, nil
	}
	return []byte{0x6A, 0x82}, nil
}

func TestCertificates(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(*vseries8.Config)
		wantLabels [2]string
	}{
		{"containers", nil, [2]string{"", ""}},
		{"object lists", func(c *vseries8.Config) { c.NoContainers = true }, [2]string{"Authentication", "Signature"}},
		// The signing key at a lower index: container order, not FIDs, decides.
		{"swapped indexes", func(c *vseries8.Config) { c.Auth.Index, c.Sign.Index = 0x05, 0x03 }, [2]string{"", ""}},
		{"lists, swapped", func(c *vseries8.Config) { c.Auth.Index, c.Sign.Index = 0x05, 0x03; c.NoContainers = true }, [2]string{"Authentication", "Signature"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card, creds := newVCard(t, testpki.RSA2048, tc.edit)
			s, _ := localSession(card)
			c := open(t, s)
			certs, err := c.Certificates(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != 2 {
				t.Fatalf("%d certificates, want 2", len(certs))
			}
			for i, want := range []struct {
				ref  pcsc.KeyRef
				der  []byte
				name string
			}{{pcsc.KeyAuthentication, creds.AuthCert.Raw, "auth"}, {pcsc.KeySignature, creds.SignCert.Raw, "sign"}} {
				if certs[i].Key != want.ref || !bytes.Equal(certs[i].Cert.Raw, want.der) {
					t.Errorf("certificate %d: key %s, want the %s certificate as %s", i, certs[i].Key, want.name, want.ref)
				}
				if certs[i].Label != tc.wantLabels[i] {
					t.Errorf("certificate %d: label %q, want %q", i, certs[i].Label, tc.wantLabels[i])
				}
			}
		})
	}
}

// TestCertificateReads checks that a certificate is read in 256-byte chunks
// up to the end of its DER, however large its file.
func TestCertificateReads(t *testing.T) {
	card, creds := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.CertSlack = 2000 })
	s, _ := localSession(card)
	c := open(t, s)
	card.ClearLog()
	if _, err := c.Certificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, ins := range card.INSLog() {
		if ins == 0xB0 {
			reads++
		}
	}
	want := (len(creds.AuthCert.Raw)+255)/256 + (len(creds.SignCert.Raw)+255)/256
	if reads != want {
		t.Errorf("%d READ BINARY for two certificates of %d and %d bytes, want %d", reads, len(creds.AuthCert.Raw), len(creds.SignCert.Raw), want)
	}
}

// TestKeyWithoutCertificate: a key whose certificate is missing still signs;
// its public key is read from the card (80 B4).
func TestKeyWithoutCertificate(t *testing.T) {
	card, creds := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.Sign.Cert = nil })
	ls, _ := localSession(card)
	s := &countingSession{Session: ls}
	c := open(t, s)
	// Key map and public key in one transaction.
	s.n = 0
	key, err := c.PrivateKey(pcsc.KeySignature, pinFunc(vseries8.DefaultPIN))
	if err != nil {
		t.Fatal(err)
	}
	if s.n != 1 {
		t.Errorf("PrivateKey used %d transactions, want 1", s.n)
	}
	certs, err := c.Certificates(context.Background())
	if err != nil || len(certs) != 1 || certs[0].Key != pcsc.KeyAuthentication {
		t.Fatalf("Certificates: %v, %v", certs, err)
	}
	if s.n != 1 {
		t.Errorf("Certificates after PrivateKey read the card again")
	}
	if !key.Public().(*rsa.PublicKey).Equal(creds.SignKey.Public()) {
		t.Fatal("public key read from the card is not the signing key")
	}
	d := sha256.Sum256([]byte("no certificate"))
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(creds.SignKey.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PrivateKey("3009", pinFunc(vseries8.DefaultPIN)); !errors.Is(err, pcsc.ErrNotFound) {
		t.Errorf("PrivateKey of a missing key: %v, want ErrNotFound", err)
	}
}

// TestSignAPDUs checks the exact commands of one signature, and that the
// PIN does not stay verified.
func TestSignAPDUs(t *testing.T) {
	card, creds := newVCard(t, testpki.RSA2048, nil)
	s, _ := localSession(card)
	c := open(t, s)
	key, err := c.PrivateKey(pcsc.KeyAuthentication, pinFunc(vseries8.DefaultPIN))
	if err != nil {
		t.Fatal(err)
	}
	card.ClearLog()
	d := sha256.Sum256([]byte("sign"))
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(creds.AuthCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range card.APDUs() {
		got = append(got, pcsc.FormatCommand(a))
	}
	di := "30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20 " + pcsc.HexString(d[:])
	want := []string{
		"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
		"00 A4 00 00 02 3F 00 00",
		"00 A4 00 00 02 50 11 00",
		"00 20 00 81 40 <redacted 64 bytes>",
		"00 A4 00 00 02 90 02 00",
		"00 A4 00 00 02 30 01 00",
		"00 22 41 B6 03 80 01 11",
		"00 2A 9E 9A 33 " + di + " 00",
		"80 2E 00 21",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("APDUs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if card.Verified() {
		t.Error("the PIN is still verified after Sign")
	}
}

// TestNoResendAfterTransportError: a VERIFY whose answer is lost is never sent again.
func TestNoResendAfterTransportError(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(map[bool]string{false: "lost before the card", true: "answer lost"}[after], func(t *testing.T) {
			card, _ := newVCard(t, testpki.RSA2048, nil)
			s, ft := localSession(card)
			c := open(t, s)
			calls := 0
			key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { calls++; return []byte(vseries8.DefaultPIN), nil })
			if err != nil {
				t.Fatal(err)
			}
			ft.after.Store(after)
			ft.pullINS.Store(0x20 + 1)
			card.ClearLog()
			d := sha256.Sum256([]byte("x"))
			if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, pcsc.ErrCardRemoved) {
				t.Fatalf("Sign: %v, want ErrCardRemoved", err)
			}
			verifies := 0
			for _, ins := range card.INSLog() {
				if ins == 0x20 {
					verifies++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[after]; verifies != want || calls != 1 {
				t.Errorf("card saw %d VERIFY, PIN asked %d times; want %d and 1", verifies, calls, want)
			}
		})
	}
}

func TestUnsupportedOptions(t *testing.T) {
	card, _ := newVCard(t, testpki.RSA2048, nil)
	s, _ := localSession(card)
	c := open(t, s)
	calls := 0
	key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { calls++; return []byte(vseries8.DefaultPIN), nil })
	if err != nil {
		t.Fatal(err)
	}
	before := card.APDUCount()
	for name, opts := range map[string]crypto.SignerOpts{
		"pss":      &rsa.PSSOptions{Hash: crypto.SHA256},
		"sha224":   crypto.SHA224,
		"raw":      crypto.Hash(0),
		"md5sha1":  crypto.MD5SHA1,
		"sha3-256": crypto.SHA3_256,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := key.Sign(rand.Reader, make([]byte, 32), opts); !errors.Is(err, pcsc.ErrUnsupportedAlgorithm) {
				t.Errorf("Sign: %v, want ErrUnsupportedAlgorithm", err)
			}
		})
	}
	if _, err := key.Sign(rand.Reader, make([]byte, 20), crypto.SHA256); err == nil {
		t.Error("Sign accepted a 20-byte digest for SHA-256")
	}
	if calls != 0 || card.APDUCount() != before {
		t.Errorf("rejected options asked for the PIN %d times and sent %d APDUs", calls, card.APDUCount()-before)
	}
}

func TestPINStatusAndLength(t *testing.T) {
	card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.PIN = []byte("abcd") })
	s, _ := localSession(card)
	c := open(t, s, series8.WithPINLength(4, 12))
	st, err := c.PINStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st != (pcsc.PINStatus{Retries: 3, MinLen: 4, MaxLen: 12}) {
		t.Errorf("PINStatus %+v", st)
	}
	key, err := c.PrivateKey(pcsc.KeyAuthentication, pinFunc("abcd"))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("old PIN"))
	if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatalf("a 4-letter PIN with WithPINLength(4, 12): %v", err)
	}
	card.SetPINTries(0)
	if st, err = c.PINStatus(context.Background()); err != nil || !st.Blocked || st.Retries != 0 {
		t.Errorf("blocked card: %+v, %v", st, err)
	}
	// Open with default lengths refuses the 4-letter PIN without a try.
	c2 := open(t, s)
	key2, _ := c2.PrivateKey(pcsc.KeyAuthentication, pinFunc("abcd"))
	if _, err := key2.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, pcsc.ErrPINFormat) {
		t.Errorf("default lengths: %v, want ErrPINFormat", err)
	}
}

// marker is a PIN (letters, as older NHS PINs may have) that must never appear in a trace.
const marker = "Zq7Xw9k2"

// TestTraceRedactsSeries8 drives the series 8 driver through a Tracer and
// checks that no PIN or PUK used reaches the transcript.
func TestTraceRedactsSeries8(t *testing.T) {
	code := []byte("UnblockCode-0123")
	card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) {
		c.PIN = []byte(marker)
		c.PUK = []byte(marker + marker)
		c.UnblockCode = code
	})
	var buf bytes.Buffer
	s := &pcsc.LocalSession{T: pcsc.NewTracer(card, &buf), CardATR: card.ATR()}
	c := open(t, s)
	key, err := c.PrivateKey(pcsc.KeyAuthentication, pinFunc(marker))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("trace"))
	if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangePIN(context.Background(), []byte(marker), []byte("Zq7Xw9k3")); err != nil {
		t.Fatal(err)
	}
	if err := c.UnblockPIN(context.Background(), []byte(marker+marker), []byte(marker)); err != nil {
		t.Fatal(err)
	}
	trace := buf.String()
	for _, want := range []string{"00 20 00 81 40 <redacted 64 bytes>", "00 24 00 01 80 <redacted 128 bytes>",
		"00 20 00 84 40 <redacted 64 bytes>", "00 B0 00 00 10\n", "< <redacted 16 bytes> 90 00", "00 2C 00 01 50 <redacted 80 bytes>", "00 2A 9E 9A 33 30 31"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	for _, secret := range []string{marker, "Zq7Xw9k3", string(code)} {
		for _, form := range secretForms(secret) {
			if strings.Contains(trace, form) {
				t.Errorf("trace contains %q", form)
			}
		}
	}
}

func secretForms(s string) []string {
	h := hex.EncodeToString([]byte(s))
	sp := strings.TrimSpace(strings.ReplaceAll(pcsc.HexString([]byte(s)), "  ", " "))
	return []string{s, h, strings.ToUpper(h), sp, strings.ToLower(sp)}
}

// TestProbe checks that the probe sends exactly the commands of docs/series8.md
// and nothing that carries a PIN or writes.
func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		aid  []byte
		want []string
	}{
		{"AuthentIC v2.2", vseries8.AIDAuthentIC, []string{
			"00 A4 04 0C 07 A0 00 00 00 03 00 00",
			"80 CA 9F 7F 2D",
			"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
			"00 A4 00 00 02 3F 00",
			"00 A4 00 00 02 50 11",
			"00 20 00 04",
			"00 20 00 84",
			"00 20 00 81",
			"00 A4 04 0C 08 A0 00 00 00 03 00 00 00",
			"80 CA 9F 7F 2D",
			"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
			"00 A4 04 0C 10 A0 00 00 00 77 01 00 70 0A 10 00 F1 00 00 01 00",
			"00 A4 04 0C 10 A0 00 00 00 77 01 08 00 07 00 00 FE 00 00 01 00",
			"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
			"00 A4 00 00 02 3F 00 00",
			"00 A4 00 00 02 50 11 00",
			"00 20 00 81",
		}},
		{"none", []byte{0xA0, 0x00, 0x00, 0x00, 0x01}, []string{
			"00 A4 04 0C 07 A0 00 00 00 03 00 00",
			"80 CA 9F 7F 2D",
			"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
			"00 A4 00 00 02 3F 00",
			"00 A4 00 00 02 50 11",
			"00 20 00 04",
			"00 20 00 84",
			"00 20 00 81",
			"00 A4 04 0C 08 A0 00 00 00 03 00 00 00",
			"80 CA 9F 7F 2D",
			"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
			"00 A4 04 0C 10 A0 00 00 00 77 01 00 70 0A 10 00 F1 00 00 01 00",
			"00 A4 04 0C 10 A0 00 00 00 77 01 08 00 07 00 00 FE 00 00 01 00",
			"00 A4 00 00 02 3F 00 00",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.AID = tc.aid })
			s, _ := localSession(card)
			var buf bytes.Buffer
			if err := series8.Probe(context.Background(), s, &buf); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range card.APDUs() {
				got = append(got, pcsc.HexString(a))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("probe sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			out := buf.String()
			for _, want := range []string{"# ATR: 3B 7D 18", "Oberthur 64k v4", "> 80 CA 9F 7F 2D", "# probe complete"} {
				if !strings.Contains(out, want) {
					t.Errorf("transcript lacks %q:\n%s", want, out)
				}
			}
			if tc.name == "AuthentIC v2.2" && !strings.Contains(out, "< 63 C3") {
				t.Errorf("transcript lacks the PIN status:\n%s", out)
			}
			if card.WriteCount() != 0 || card.PINTries() != 3 || card.PUKTries() != 10 {
				t.Error("the probe wrote or spent a PIN try")
			}
		})
	}
}

// TestProbeTransportError: a card that goes away ends the probe with an error in the transcript.
func TestProbeTransportError(t *testing.T) {
	card, _ := newVCard(t, testpki.RSA2048, nil)
	s, ft := localSession(card)
	ft.pullINS.Store(0xCA + 1)
	var buf bytes.Buffer
	err := series8.Probe(context.Background(), s, &buf)
	if !errors.Is(err, pcsc.ErrCardRemoved) {
		t.Fatalf("Probe: %v, want ErrCardRemoved", err)
	}
	if !strings.Contains(buf.String(), "< error: card removed") || !strings.Contains(buf.String(), "# probe ended") {
		t.Errorf("transcript:\n%s", buf.String())
	}
}

func TestDescribeATR(t *testing.T) {
	if got := series8.DescribeATR(vseries8.ATROberthur64kV5); !strings.Contains(got, "Oberthur") {
		t.Errorf("DescribeATR(v5) = %q", got)
	}
	if got := series8.DescribeATR([]byte{0x3B, 0x00}); got != "" {
		t.Errorf("DescribeATR(unknown) = %q", got)
	}
}
