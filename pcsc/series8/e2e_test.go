package series8_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/series8"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// e2eSlot alternates the vpcd slot between cases, so a case rarely waits for
// pcscd to notice that the previous card in its slot was removed.
var e2eSlot atomic.Int32

// insertE2E inserts card into a vpcd slot of the test binary's pcscd and
// returns a connected Session on it.
func insertE2E(tb testing.TB, card vcard.Card, opts vcard.Options, log *zap.Logger) (pcsc.Session, string) {
	tb.Helper()
	p := pcsctest.Require(tb)
	slot := int(e2eSlot.Add(1) % 2)
	reader := pcsctest.ReaderNames[slot]
	p.Insert(tb, slot, card, opts)
	p.WaitCard(tb, slot, true)
	return openConn(tb, reader, log), reader
}

func openConn(tb testing.TB, reader string, log *zap.Logger) pcsc.Session {
	tb.Helper()
	conn, err := pcsc.Open(context.Background(), log, reader)
	if err != nil {
		tb.Fatalf("pcsc.Open(%q): %v", reader, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

func e2eFixture(name string, kt testpki.KeyType, edit func(*vseries8.Config)) cardtest.Fixture {
	return cardtest.Fixture{
		Name: name,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			card, _ := newVCard(t, kt, edit)
			var pull atomic.Bool
			opts := vcard.Options{BeforeAPDU: func(cmd []byte) vcard.Fault {
				if pull.Load() && len(cmd) > 1 && cmd[1] == 0x2A {
					return vcard.Drop
				}
				return vcard.Pass
			}}
			s, reader := insertE2E(t, card, opts, log)
			c, err := series8.Open(context.Background(), s, log)
			if err != nil {
				t.Fatalf("series8.Open: %v", err)
			}
			return &cardtest.Env{
				Card:       c,
				PIN:        []byte(vseries8.DefaultPIN),
				PUK:        []byte(vseries8.DefaultPUK),
				PINTries:   card.PINTries,
				PUKTries:   card.PUKTries,
				PullOnSign: func() { pull.Store(true) },
				Writes:     card.WriteCount,
				APDUs:      card.APDUCount,
				Reopen: func(t *testing.T) pcsc.Card {
					c2, err := series8.Open(context.Background(), openConn(t, reader, log), log)
					if err != nil {
						t.Fatalf("second series8.Open: %v", err)
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

// TestConformanceE2E runs the conformance suite through real pcscd + vpcd.
func TestConformanceE2E(t *testing.T) {
	pcsctest.Require(t)
	for _, f := range []cardtest.Fixture{
		e2eFixture("rsa2048", testpki.RSA2048, nil),
		e2eFixture("rsa1024-cosmo-v7", testpki.RSA1024, func(c *vseries8.Config) { c.ATR = vseries8.ATRCosmoV7; c.AID = vseries8.AIDAuthentICv3 }),
	} {
		t.Run(f.Name, func(t *testing.T) { cardtest.Run(t, f) })
	}
}

// TestProbeE2E runs the trace-mode probe through pcscd and checks the transcript.
func TestProbeE2E(t *testing.T) {
	card, _ := newVCard(t, testpki.RSA2048, func(c *vseries8.Config) { c.Serial = [4]byte{0x12, 0x34, 0x56, 0x78} })
	log := zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel))
	s, reader := insertE2E(t, card, vcard.Options{}, log)
	var buf bytes.Buffer
	if err := series8.Probe(context.Background(), s, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Logf("probe transcript:\n%s", out)
	for _, want := range []string{
		"# reader: " + reader,
		"# ATR: 3B 7D 18 00 00 00 31 80 71 8E 64 77 E3 01 00 82 90 00 (Oberthur 64k v4 (AuthentIC))",
		"# CPLC IC serial: 12 34 56 78",
		"> 00 20 00 81\n",
		"< 63 C3 [",
		"# applets that answered: [AuthentIC v2.2 a000000077010303000000f100000002]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	for _, a := range card.APDUs() {
		if len(a) > 4 && (a[1] == 0x20 || a[1] == 0x24 || a[1] == 0x2C) {
			t.Errorf("probe sent a secret-bearing command % X", a)
		}
	}
	// The driver opens the card afterwards as usual.
	c, err := series8.Open(context.Background(), s, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info().ID != "12345678" {
		t.Errorf("ID %q", c.Info().ID)
	}
}

// benchCard inserts an RSA-2048 card for a benchmark and returns it with its session.
func benchCard(b *testing.B) (*vseries8.Card, pcsc.Session) {
	card, _ := newVCard(b, testpki.RSA2048, nil)
	s, _ := insertE2E(b, card, vcard.Options{}, zap.NewNop())
	return card, s
}

func reportAPDUs(b *testing.B, n int) {
	b.ReportMetric(float64(n)/float64(b.N), "apdus/op")
}

// BenchmarkOpen: CPLC, applet, AWP directory: the identity read at insertion.
func BenchmarkOpen(b *testing.B) {
	card, s := benchCard(b)
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		if _, err := series8.Open(context.Background(), s, zap.NewNop()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportAPDUs(b, card.APDUCount()-before)
}

// BenchmarkReadCertificates: both certificates of a freshly opened Card.
func BenchmarkReadCertificates(b *testing.B) {
	card, s := benchCard(b)
	apdus := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c, err := series8.Open(context.Background(), s, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		before := card.APDUCount()
		b.StartTimer()
		certs, err := c.Certificates(context.Background())
		if err != nil || len(certs) != 2 {
			b.Fatalf("Certificates: %d, %v", len(certs), err)
		}
		b.StopTimer()
		apdus += card.APDUCount() - before
		b.StartTimer()
	}
	b.StopTimer()
	reportAPDUs(b, apdus)
}

// BenchmarkPINStatus: the empty VERIFY.
func BenchmarkPINStatus(b *testing.B) {
	card, s := benchCard(b)
	c, err := series8.Open(context.Background(), s, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		if st, err := c.PINStatus(context.Background()); err != nil || st.Retries != 3 {
			b.Fatalf("PINStatus: %+v, %v", st, err)
		}
	}
	b.StopTimer()
	reportAPDUs(b, card.APDUCount()-before)
}

// BenchmarkVerifySign: VERIFY, MSE, PSO and logout with the authentication key (SHA-256).
func BenchmarkVerifySign(b *testing.B) {
	card, s := benchCard(b)
	c, err := series8.Open(context.Background(), s, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	key, err := c.PrivateKey(pcsc.KeyAuthentication, pinFunc(vseries8.DefaultPIN))
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("bench"))
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			b.Fatal(err)
		}
		if len(sig) != key.Public().(*rsa.PublicKey).Size() {
			b.Fatalf("signature of %d bytes", len(sig))
		}
	}
	b.StopTimer()
	reportAPDUs(b, card.APDUCount()-before)
}
