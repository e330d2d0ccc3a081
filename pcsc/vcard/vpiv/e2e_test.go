package vpiv_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestMain(m *testing.M) {
	os.Exit(pcsctest.Main(m, func() {
		if benchSlot != nil {
			benchSlot.Remove()
		}
	}))
}

// connect opens a shared connection to the card in reader, waiting up to 3 s
// for pcscd to notice the insertion.
func connect(tb testing.TB, p *pcsctest.PCSCD, reader string) (*scard.Context, *scard.Card) {
	tb.Helper()
	ctx, err := scard.EstablishContext()
	if err != nil {
		tb.Fatalf("EstablishContext: %v\n%s", err, p.Log())
	}
	var card *scard.Card
	deadline := time.Now().Add(3 * time.Second)
	for {
		card, err = ctx.Connect(reader, scard.ShareShared, scard.ProtocolAny)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		ctx.Release()
		tb.Fatalf("Connect: %v\n%s", err, p.Log())
	}
	tb.Cleanup(func() {
		card.Disconnect(scard.LeaveCard)
		ctx.Release()
	})
	return ctx, card
}

// TestEndToEnd drives the virtual NHS card through pcscd, libpcsclite and
// ebfe/scard, as the agent will: SELECT, read the 9A certificate (GET DATA
// and GET RESPONSE), PIN status, wrong PIN, VERIFY and a signature.
func TestEndToEnd(t *testing.T) {
	p := pcsctest.Require(t)
	card, creds := newNHS(t, testpki.RSA2048)
	p.Insert(t, 0, card, vcard.Options{})
	_, sc := connect(t, p, pcsctest.ReaderNames[0])

	st, err := sc.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Atr, vpiv.DefaultATR) {
		t.Errorf("ATR % X, want % X", st.Atr, vpiv.DefaultATR)
	}
	if st.ActiveProtocol != scard.ProtocolT1 {
		t.Errorf("protocol %v, want T=1", st.ActiveProtocol)
	}

	card.ClearLog()
	selectPIV(t, sc)
	r := getData(t, sc, vpiv.TagCert9A)
	if r.SW != 0x9000 {
		t.Fatalf("GET DATA 9A: SW %04X", r.SW)
	}
	outer, err := pcsc.ParseTLV(r.Data)
	if err != nil || len(outer) != 1 {
		t.Fatalf("container: %v", err)
	}
	objs, err := pcsc.ParseTLV(outer[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := pcsc.FindTLV(objs, 0x70)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(creds.AuthCert) {
		t.Error("9A certificate differs from the issued one")
	}
	log := card.INSLog()
	if log[0] != 0xA4 || log[1] != 0xCB || bytes.Count(log, []byte{0xC0}) != (len(r.Data)-1)/256 {
		t.Errorf("INS log % X for a %d-byte object", log, len(r.Data))
	}

	if sw := exchange(t, sc, pcsc.Command{INS: 0x20, P2: 0x80, Le: -1}).SW; sw != 0x63C3 {
		t.Errorf("PIN status: %04X, want 63C3", sw)
	}
	if sw := verifyPIN(t, sc, "000000"); sw != 0x63C2 || card.PINTries() != 2 {
		t.Errorf("wrong PIN: %04X, tries %d", sw, card.PINTries())
	}
	if sw := verifyPIN(t, sc, vpiv.DefaultPIN); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}
	digest := sha256.Sum256([]byte("end to end"))
	pub := creds.AuthCert.PublicKey.(*rsa.PublicKey)
	r = generalAuthenticate(t, sc, vpiv.AlgRSA2048, vpiv.SlotAuthentication, pkcs1v15(t, pub.Size(), digest[:]))
	if r.SW != 0x9000 {
		t.Fatalf("GENERAL AUTHENTICATE: %04X", r.SW)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], signatureOf(t, r.Data)); err != nil {
		t.Error(err)
	}

	// A reset through pcscd reaches the card: PIN no longer verified, PIV no longer selected.
	if err := sc.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.ResetCard); err != nil {
		t.Fatal(err)
	}
	if card.Verified() {
		t.Error("PIN still verified after a card reset")
	}
	if sw := getData(t, sc, vpiv.TagCHUID).SW; sw != 0x6A82 {
		t.Errorf("GET DATA without SELECT after reset: %04X, want 6A82", sw)
	}
	if card.WriteCount() != 0 {
		t.Errorf("%d writes", card.WriteCount())
	}
}

// The benchmarks share one card in slot 1, inserted on first use and removed
// by TestMain: a benchmark function runs several times, and reinserting a
// card each time would race pcscd's polling.
var (
	benchSlot *vcard.Slot
	benchCard *vpiv.Card
)

func benchmarkCard(b *testing.B) (*vpiv.Card, *scard.Card) {
	b.Helper()
	p := pcsctest.Require(b)
	if benchSlot == nil {
		benchCard, _ = newNHS(b, testpki.RSA2048)
		p.WaitCard(b, 1, false)
		var err error
		if benchSlot, err = vcard.Insert(p.Addr(1), benchCard, vcard.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	_, sc := connect(b, p, pcsctest.ReaderNames[1])
	selectPIV(b, sc)
	return benchCard, sc
}

// BenchmarkAPDURoundTrip measures one small APDU (GET DATA of the discovery
// object, 20 bytes back) through pcscd and vpcd.
func BenchmarkAPDURoundTrip(b *testing.B) {
	_, sc := benchmarkCard(b)
	apdu := unhex(b, getDisc)
	for b.Loop() {
		resp, err := sc.Transmit(apdu)
		if err != nil || len(resp) != 22 {
			b.Fatalf("% X %v", resp, err)
		}
	}
}

// BenchmarkReadCertificate measures reading the 9A certificate (GET DATA and
// its GET RESPONSEs) through pcscd and vpcd.
func BenchmarkReadCertificate(b *testing.B) {
	card, sc := benchmarkCard(b)
	card.ClearLog()
	n := 0
	for b.Loop() {
		if r := getData(b, sc, vpiv.TagCert9A); r.SW != 0x9000 {
			b.Fatalf("SW %04X", r.SW)
		}
		n++
	}
	b.ReportMetric(float64(card.APDUCount())/float64(n), "APDUs/op")
}
