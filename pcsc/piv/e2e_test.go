package piv_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/piv"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
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

func e2eFixture(name string, kt testpki.KeyType, algs []cardtest.Alg) cardtest.Fixture {
	return cardtest.Fixture{
		Name: name,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			kt, adjust := kt, func(*vpiv.Config) {}
			if kt == mixed {
				kt, adjust = testpki.RSA2048, mixedCard(t)
			}
			card := newVCard(t, kt, adjust)
			var pull atomic.Bool
			opts := vcard.Options{BeforeAPDU: func(cmd []byte) vcard.Fault {
				if pull.Load() && len(cmd) > 1 && cmd[1] == 0x87 {
					return vcard.Drop
				}
				return vcard.Pass
			}}
			s, reader := insertE2E(t, card, opts, log)
			c, err := piv.Open(context.Background(), s, log)
			if err != nil {
				t.Fatalf("piv.Open: %v", err)
			}
			return &cardtest.Env{
				Card:       c,
				PIN:        []byte(vpiv.DefaultPIN),
				PUK:        []byte(vpiv.DefaultPUK),
				PINTries:   card.PINTries,
				PUKTries:   card.PUKTries,
				PullOnSign: func() { pull.Store(true) },
				Writes:     card.WriteCount,
				APDUs:      card.APDUCount,
				Reopen: func(t *testing.T) pcsc.Card {
					c2, err := piv.Open(context.Background(), openConn(t, reader, log), log)
					if err != nil {
						t.Fatalf("second piv.Open: %v", err)
					}
					t.Cleanup(func() { c2.Close() })
					return c2
				},
			}
		},
		Algorithms: algs,
		Caps:       cardtest.Caps{ChangePIN: true, Unblock: true},
	}
}

// TestConformanceE2E runs the conformance suite through real pcscd + vpcd.
func TestConformanceE2E(t *testing.T) {
	pcsctest.Require(t)
	for _, f := range []cardtest.Fixture{
		// One card with RSA-2048 (9A, 9C), P-256 (9D) and P-384 (9E) keys: every
		// case needs a fresh insertion (~0.4 s for pcscd to see it), so one
		// fixture covers both key families. The local run covers each key type alone.
		e2eFixture("mixed", mixed, mixedAlgs),
	} {
		t.Run(f.Name, func(t *testing.T) { cardtest.Run(t, f) })
	}
}

// TestE2ENoYubiKeyInstructions checks the INS log of a card driven through
// pcscd: the driver never sends a YubiKey-only instruction.
func TestE2ENoYubiKeyInstructions(t *testing.T) {
	card := newVCard(t, testpki.RSA2048, nil)
	s, _ := insertE2E(t, card, vcard.Options{}, zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)))
	c, err := piv.Open(context.Background(), s, zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("e2e"))
	if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	for _, ins := range card.INSLog() {
		switch ins {
		case 0xFD, 0xF8, 0xF7, 0xF9:
			t.Errorf("driver sent YubiKey-only INS %02X", ins)
		case 0xA4, 0xCB, 0xC0, 0x20, 0x87:
		default:
			t.Errorf("driver sent unexpected INS %02X", ins)
		}
	}
}

// benchCard inserts an RSA-2048 card for a benchmark and returns it with its session.
func benchCard(b *testing.B) (*vpiv.Card, pcsc.Session) {
	card := newVCard(b, testpki.RSA2048, nil)
	s, _ := insertE2E(b, card, vcard.Options{}, zap.NewNop())
	return card, s
}

func reportAPDUs(b *testing.B, card *vpiv.Card, before int) {
	b.ReportMetric(float64(card.APDUCount()-before)/float64(b.N), "apdus/op")
}

// BenchmarkOpen: SELECT and CHUID, the identity read at insertion.
func BenchmarkOpen(b *testing.B) {
	card, s := benchCard(b)
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		if _, err := piv.Open(context.Background(), s, zap.NewNop()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportAPDUs(b, card, before)
}

// BenchmarkReadCertificates: all certificates of a freshly opened Card.
func BenchmarkReadCertificates(b *testing.B) {
	card, s := benchCard(b)
	apdus := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c, err := piv.Open(context.Background(), s, zap.NewNop())
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
	b.ReportMetric(float64(apdus)/float64(b.N), "apdus/op")
}

// BenchmarkPINStatus: an empty VERIFY, no try spent.
func BenchmarkPINStatus(b *testing.B) {
	card, s := benchCard(b)
	c, err := piv.Open(context.Background(), s, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		st, err := c.PINStatus(context.Background())
		if err != nil || st.Retries != vpiv.DefaultRetries {
			b.Fatalf("PINStatus: %+v, %v", st, err)
		}
	}
	b.StopTimer()
	reportAPDUs(b, card, before)
}

// BenchmarkVerifySign: VERIFY + GENERAL AUTHENTICATE (RSA-2048 PKCS#1 v1.5 SHA-256) + PIN reset.
func BenchmarkVerifySign(b *testing.B) {
	card, s := benchCard(b)
	c, err := piv.Open(context.Background(), s, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte(vpiv.DefaultPIN), nil })
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("benchmark"))
	before := card.APDUCount()
	b.ResetTimer()
	for range b.N {
		if _, err := key.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportAPDUs(b, card, before)
	if card.PINTries() != vpiv.DefaultRetries || card.Signatures() < b.N {
		b.Fatalf("card state after the benchmark: %d tries, %d signatures", card.PINTries(), card.Signatures())
	}
}
