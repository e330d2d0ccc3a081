package vpiv_test

import (
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

var (
	pkiOnce sync.Once
	pki     *testpki.PKI
	pkiErr  error
)

// testPKI returns one PKI for the whole test binary (keys are cached anyway).
func testPKI(tb testing.TB) *testpki.PKI {
	tb.Helper()
	pkiOnce.Do(func() { pki, pkiErr = testpki.New() })
	if pkiErr != nil {
		tb.Fatal(pkiErr)
	}
	return pki
}

func issue(tb testing.TB, spec testpki.CardSpec) *testpki.CardCreds {
	tb.Helper()
	creds, err := testPKI(tb).IssueCard(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return creds
}

func newNHS(tb testing.TB, kt testpki.KeyType) (*vpiv.Card, *testpki.CardCreds) {
	tb.Helper()
	creds := issue(tb, testpki.CardSpec{DaysLeft: 400, KeyType: kt})
	card, err := vpiv.New(vpiv.NHSConfig(creds))
	if err != nil {
		tb.Fatal(err)
	}
	return card, creds
}

// unhex parses "00 A4 04 00" style hex.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// send transmits a raw APDU and splits the answer.
func send(tb testing.TB, c *vpiv.Card, apdu []byte) ([]byte, uint16) {
	tb.Helper()
	raw, err := c.Transmit(apdu)
	if err != nil {
		tb.Fatalf("Transmit(% X): %v", apdu, err)
	}
	r, err := pcsc.ParseResponse(raw)
	if err != nil {
		tb.Fatalf("Transmit(% X): %v", apdu, err)
	}
	return r.Data, r.SW
}

// exchange runs a command through pcsc.Exchange (chaining, GET RESPONSE).
func exchange(tb testing.TB, t pcsc.Transmitter, cmd pcsc.Command) pcsc.Response {
	tb.Helper()
	r, err := pcsc.Exchange(t, cmd)
	if err != nil {
		tb.Fatalf("Exchange(%v): %v", cmd, err)
	}
	return r
}

func selectPIV(tb testing.TB, t pcsc.Transmitter) {
	tb.Helper()
	if r := exchange(tb, t, pcsc.Command{INS: 0xA4, P1: 0x04, Data: vpiv.AID, Le: 0}); r.SW != 0x9000 {
		tb.Fatalf("SELECT: SW %04X", r.SW)
	}
}

func pinBlock(pin string) []byte {
	b := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	copy(b, pin)
	return b
}

func verifyPIN(tb testing.TB, t pcsc.Transmitter, pin string) uint16 {
	tb.Helper()
	return exchange(tb, t, pcsc.Command{INS: 0x20, P2: 0x80, Data: pinBlock(pin), Le: -1}).SW
}

// getData reads a data object by tag and returns the whole answer (53 ... or 7E ...).
func getData(tb testing.TB, t pcsc.Transmitter, tag uint32) pcsc.Response {
	tb.Helper()
	var tb3 []byte
	switch {
	case tag > 0xFFFF:
		tb3 = []byte{byte(tag >> 16), byte(tag >> 8), byte(tag)}
	case tag > 0xFF:
		tb3 = []byte{byte(tag >> 8), byte(tag)}
	default:
		tb3 = []byte{byte(tag)}
	}
	return exchange(tb, t, pcsc.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: pcsc.AppendTLV(nil, 0x5C, tb3), Le: 0})
}

// generalAuthenticate signs input with the key in slot.
func generalAuthenticate(tb testing.TB, t pcsc.Transmitter, alg, slot byte, input []byte) pcsc.Response {
	tb.Helper()
	inner := pcsc.AppendTLV(pcsc.AppendTLV(nil, 0x82, nil), 0x81, input)
	return exchange(tb, t, pcsc.Command{INS: 0x87, P1: alg, P2: slot, Data: pcsc.AppendTLV(nil, 0x7C, inner), Le: 0})
}

// signatureOf extracts the result from 7C{82 ...}.
func signatureOf(tb testing.TB, data []byte) []byte {
	tb.Helper()
	outer, err := pcsc.ParseTLV(data)
	if err != nil || len(outer) != 1 || outer[0].Tag != 0x7C {
		tb.Fatalf("bad GENERAL AUTHENTICATE answer % X", data)
	}
	inner, err := pcsc.ParseTLV(outer[0].Value)
	if err != nil {
		tb.Fatal(err)
	}
	sig, ok := pcsc.FindTLV(inner, 0x82)
	if !ok {
		tb.Fatalf("no 82 in % X", data)
	}
	return sig
}
