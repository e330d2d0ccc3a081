package vpiv_test

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

var _ vcard.Card = (*vpiv.Card)(nil)

// APDU building blocks, in hex.
const (
	selPIV   = "00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00 00"
	selRID   = "00 A4 04 00 05 A0 00 00 03 08 00"
	selCM    = "00 A4 04 00 08 A0 00 00 01 51 00 00 00 00"
	getCHUID = "00 CB 3F FF 05 5C 03 5F C1 02 00"
	get9A    = "00 CB 3F FF 05 5C 03 5F C1 05 00"
	get9D    = "00 CB 3F FF 05 5C 03 5F C1 0B 00"
	getDisc  = "00 CB 3F FF 03 5C 01 7E 00"
	getResp  = "00 C0 00 00 00"
	verEmpty = "00 20 00 80"
	verReset = "00 20 FF 80"
)

func ver(pin string) string { return "00 20 00 80 08 " + hex.EncodeToString(pinBlock(pin)) }

func change(ref byte, old, new []byte) string {
	return fmt.Sprintf("00 24 00 %02X 10 %X%X", ref, old, new)
}

func reset(puk string, pin string) string {
	return fmt.Sprintf("00 2C 00 80 10 %X%X", []byte(puk), pinBlock(pin))
}

type step struct {
	apdu  string
	sw    uint16
	check func(t *testing.T, c *vpiv.Card, data []byte) // optional
}

func tries(pin, puk int) func(*testing.T, *vpiv.Card, []byte) {
	return func(t *testing.T, c *vpiv.Card, _ []byte) {
		t.Helper()
		if got := c.PINTries(); got != pin {
			t.Errorf("PIN tries = %d, want %d", got, pin)
		}
		if got := c.PUKTries(); got != puk {
			t.Errorf("PUK tries = %d, want %d", got, puk)
		}
	}
}

func dataLen(n int) func(*testing.T, *vpiv.Card, []byte) {
	return func(t *testing.T, _ *vpiv.Card, data []byte) {
		t.Helper()
		if len(data) != n {
			t.Errorf("data length %d, want %d", len(data), n)
		}
	}
}

func dataPrefix(h string) func(*testing.T, *vpiv.Card, []byte) {
	return func(t *testing.T, _ *vpiv.Card, data []byte) {
		t.Helper()
		want := unhex(t, h)
		if !bytes.HasPrefix(data, want) {
			t.Errorf("data % X, want prefix % X", data, want)
		}
	}
}

func writes(n int) func(*testing.T, *vpiv.Card, []byte) {
	return func(t *testing.T, c *vpiv.Card, _ []byte) {
		t.Helper()
		if got := c.WriteCount(); got != n {
			t.Errorf("WriteCount = %d, want %d", got, n)
		}
	}
}

func verified(want bool) func(*testing.T, *vpiv.Card, []byte) {
	return func(t *testing.T, c *vpiv.Card, _ []byte) {
		t.Helper()
		if got := c.Verified(); got != want {
			t.Errorf("Verified = %v, want %v", got, want)
		}
	}
}

// TestAPDUs sends raw APDU scripts to a fresh NHS card each and checks
// status words, data and the card's counters.
func TestAPDUs(t *testing.T) {
	// 7C 82 01 06 | 82 00 | 81 82 01 00 <256 bytes>: 266 bytes, sent in two chained parts.
	block := "0001" + strings.Repeat("FF", 200) + "00" + strings.Repeat("11", 53) // 256 bytes < n
	gaPart1 := "10 87 07 9A FF 7C 82 01 06 82 00 81 82 01 00 " + block[:2*(255-10)]
	gaPart2 := "00 87 07 9A 0B " + block[2*(255-10):] + " 00"

	scripts := []struct {
		name  string
		steps []step
	}{
		{"before SELECT the card manager answers", []step{
			{getCHUID, 0x6A82, nil},
			{verEmpty, 0x6D00, nil},
			{ver(vpiv.DefaultPIN), 0x6D00, tries(3, 3)},
			{"80 CA 9F 7F 00", 0x9000, dataPrefix("9F 7F 2A")},
			{"00 FD 00 00 00", 0x6D00, nil},
		}},
		{"SELECT full AID answers the APT", []step{
			{selPIV, 0x9000, dataPrefix("61")},
			{getDisc, 0x9000, dataPrefix("7E 12 4F 0B A0 00 00 03 08 00 00 10 00 01 00 5F 2F 02 40 00")},
		}},
		{"SELECT right-truncated AID", []step{
			{selRID, 0x9000, dataPrefix("61")},
			{getCHUID, 0x9000, dataPrefix("53")},
		}},
		{"SELECT P2=0C answers no data", []step{
			{"00 A4 04 0C 0B A0 00 00 03 08 00 00 10 00 01 00", 0x9000, dataLen(0)},
			{getCHUID, 0x9000, nil},
		}},
		{"unknown AID keeps PIV selected", []step{
			{selPIV, 0x9000, nil},
			{"00 A4 04 00 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02 00", 0x6A82, nil},
			{"00 A4 04 00 04 A0 00 00 03 00", 0x6A82, nil},
			{getCHUID, 0x9000, nil},
		}},
		{"SELECT card manager leaves PIV and drops the PIN", []step{
			{selPIV, 0x9000, nil},
			{ver(vpiv.DefaultPIN), 0x9000, verified(true)},
			{selCM, 0x9000, dataPrefix("6F")},
			{getCHUID, 0x6A82, verified(false)},
			{verEmpty, 0x6D00, nil},
		}},
		{"SELECT by file ID is refused", []step{
			{"00 A4 00 00 02 3F 00", 0x6A86, nil},
		}},
		{"certificate through GET RESPONSE", []step{
			{selPIV, 0x9000, nil},
			{get9A, 0x6100, dataLen(256)}, // 61 00: 256 or more bytes left
			{getResp, 0x6100, dataLen(256)},
			{verEmpty, 0x63C3, nil},
			{getResp, 0x6985, nil}, // nothing pending any more
		}},
		{"GET RESPONSE with a short Le", []step{
			{selPIV, 0x9000, nil},
			{"00 CB 3F FF 05 5C 03 5F C1 02 10", 0x612D, dataLen(16)}, // CHUID: 61 bytes
			{"00 C0 00 00 08", 0x6125, dataLen(8)},
			{getResp, 0x9000, dataLen(37)},
		}},
		{"another command discards the pending response", []step{
			{selPIV, 0x9000, nil},
			{get9A, 0x6100, nil},
			{verEmpty, 0x63C3, nil},
			{getResp, 0x6985, nil},
		}},
		{"GET DATA errors", []step{
			{selPIV, 0x9000, nil},
			{get9D, 0x6A82, nil},
			{"00 CB 3F FF 05 5C 03 5F C1 21 00", 0x6A82, nil},
			{"00 CB 3F FE 05 5C 03 5F C1 02 00", 0x6A86, nil},
			{"00 CB 3F FF 05 5D 03 5F C1 02 00", 0x6A80, nil},
			{"00 CB 3F FF 05 5C 04 5F C1 02 00", 0x6A80, nil},
			{"00 CB 3F FF 02 5C 00 00", 0x6A80, nil},
		}},
		{"VERIFY counts down by one and recovers", []step{
			{selPIV, 0x9000, nil},
			{verEmpty, 0x63C3, tries(3, 3)},
			{ver("654321"), 0x63C2, tries(2, 3)},
			{verEmpty, 0x63C2, tries(2, 3)},
			{ver("000000"), 0x63C1, tries(1, 3)},
			{ver(vpiv.DefaultPIN), 0x9000, tries(3, 3)},
			{verEmpty, 0x9000, verified(true)},
			{ver("99999999"), 0x63C2, verified(false)},
			{verEmpty, 0x63C2, nil},
		}},
		{"malformed PIN spends no try", []step{
			{selPIV, 0x9000, nil},
			{"00 20 00 80 06 31 32 33 34 35 36", 0x6A80, tries(3, 3)},
			{ver("12345"), 0x6A80, tries(3, 3)},
			{ver("12a456"), 0x6A80, tries(3, 3)},
			{"00 20 00 80 08 31 32 33 34 35 36 FF 37", 0x6A80, tries(3, 3)},
			{"00 20 00 80 08 31 32 33 34 35 36 00 00", 0x6A80, tries(3, 3)},
			{"00 20 00 80 09 31 32 33 34 35 36 FF FF FF", 0x6A80, tries(3, 3)},
			{verEmpty, 0x63C3, nil},
		}},
		{"three wrong PINs block", []step{
			{selPIV, 0x9000, nil},
			{ver("111111"), 0x63C2, nil},
			{ver("111111"), 0x63C1, nil},
			{ver("111111"), 0x6983, tries(0, 3)},
			{ver(vpiv.DefaultPIN), 0x6983, tries(0, 3)},
			{verEmpty, 0x6983, verified(false)},
			{ver("12345"), 0x6983, nil},
		}},
		{"VERIFY P1=FF resets the security status", []step{
			{selPIV, 0x9000, nil},
			{ver(vpiv.DefaultPIN), 0x9000, verified(true)},
			{verReset, 0x9000, verified(false)},
			{verEmpty, 0x63C3, nil},
		}},
		{"VERIFY other references", []step{
			{selPIV, 0x9000, nil},
			{"00 20 00 00", 0x6A88, nil},
			{"00 20 00 81 08 31 32 33 34 35 36 37 38", 0x6A88, tries(3, 3)},
			{"00 20 01 80", 0x6A86, nil},
		}},
		{"CHANGE REFERENCE DATA of the PIN", []step{
			{selPIV, 0x9000, nil},
			{change(0x80, pinBlock("000000"), pinBlock("24681357")), 0x63C2, tries(2, 3)},
			{change(0x80, pinBlock(vpiv.DefaultPIN), pinBlock("1234")), 0x6A80, tries(2, 3)},
			{change(0x80, pinBlock(vpiv.DefaultPIN), pinBlock("24681357")), 0x9000, tries(3, 3)},
			{ver(vpiv.DefaultPIN), 0x63C2, nil},
			{ver("24681357"), 0x9000, nil},
		}},
		{"CHANGE REFERENCE DATA blocks like VERIFY", []step{
			{selPIV, 0x9000, nil},
			{change(0x80, pinBlock("000000"), pinBlock("654321")), 0x63C2, nil},
			{change(0x80, pinBlock("000000"), pinBlock("654321")), 0x63C1, nil},
			{change(0x80, pinBlock("000000"), pinBlock("654321")), 0x6983, nil},
			{change(0x80, pinBlock(vpiv.DefaultPIN), pinBlock("654321")), 0x6983, tries(0, 3)},
		}},
		{"CHANGE REFERENCE DATA of the PUK", []step{
			{selPIV, 0x9000, nil},
			{change(0x81, []byte("00000000"), []byte("87654321")), 0x63C2, tries(3, 2)},
			{change(0x81, []byte(vpiv.DefaultPUK), []byte("87654321")), 0x9000, tries(3, 3)},
			{change(0x81, []byte(vpiv.DefaultPUK), []byte("87654321")), 0x63C2, nil},
			{"00 24 00 81 08 31 32 33 34 35 36 37 38", 0x6A80, tries(3, 2)},
		}},
		{"RESET RETRY COUNTER unblocks", []step{
			{selPIV, 0x9000, nil},
			{ver("111111"), 0x63C2, nil},
			{ver("111111"), 0x63C1, nil},
			{ver("111111"), 0x6983, nil},
			{reset("00000000", "11223344"), 0x63C2, tries(0, 2)},
			{reset(vpiv.DefaultPUK, "1234"), 0x6A80, tries(0, 2)},
			{reset(vpiv.DefaultPUK, "11223344"), 0x9000, tries(3, 3)},
			{ver("11223344"), 0x9000, verified(true)},
			{"00 2C 00 81 10 3132333435363738 3132333435363738", 0x6A88, nil},
		}},
		{"PUK blocks", []step{
			{selPIV, 0x9000, nil},
			{reset("00000000", "11223344"), 0x63C2, nil},
			{reset("00000000", "11223344"), 0x63C1, nil},
			{reset("00000000", "11223344"), 0x6983, tries(3, 0)},
			{reset(vpiv.DefaultPUK, "11223344"), 0x6983, tries(3, 0)},
			{change(0x81, []byte(vpiv.DefaultPUK), []byte("87654321")), 0x6983, nil},
		}},
		{"GENERAL AUTHENTICATE needs the PIN", []step{
			{selPIV, 0x9000, nil},
			{gaPart1, 0x9000, nil},
			{gaPart2, 0x6982, nil},
			{ver(vpiv.DefaultPIN), 0x9000, nil},
			{gaPart1, 0x9000, nil},
			{gaPart2, 0x6108, dataPrefix("7C 82 01 04 82 82 01 00")},
			{getResp, 0x9000, dataLen(8)},
			// PIN "once": a second signature needs no new VERIFY.
			{gaPart1, 0x9000, nil},
			{gaPart2, 0x6108, nil},
		}},
		{"signature key 9C needs a VERIFY before each signature", []step{
			{selPIV, 0x9000, nil},
			{ver(vpiv.DefaultPIN), 0x9000, nil},
			{strings.Replace(gaPart1, "07 9A", "07 9C", 1), 0x9000, nil},
			{strings.Replace(gaPart2, "07 9A", "07 9C", 1), 0x6108, nil},
			{strings.Replace(gaPart1, "07 9A", "07 9C", 1), 0x9000, nil},
			{strings.Replace(gaPart2, "07 9A", "07 9C", 1), 0x6982, verified(true)},
			{verEmpty, 0x9000, nil}, // a status check is not a VERIFY
			{strings.Replace(gaPart1, "07 9A", "07 9C", 1), 0x9000, nil},
			{strings.Replace(gaPart2, "07 9A", "07 9C", 1), 0x6982, nil},
			{ver(vpiv.DefaultPIN), 0x9000, nil},
			{strings.Replace(gaPart1, "07 9A", "07 9C", 1), 0x9000, nil},
			{strings.Replace(gaPart2, "07 9A", "07 9C", 1), 0x6108, nil},
		}},
		{"GENERAL AUTHENTICATE errors", []step{
			{selPIV, 0x9000, nil},
			{ver(vpiv.DefaultPIN), 0x9000, nil},
			{"00 87 11 9A 06 7C 04 82 00 81 00 00", 0x6A86, nil}, // wrong algorithm for the key
			{"00 87 07 9D 06 7C 04 82 00 81 00 00", 0x6A88, nil}, // no key in 9D
			{"00 87 07 9B 06 7C 04 82 00 81 00 00", 0x6A86, nil}, // not an asymmetric key
			{"00 87 07 9A 06 7C 04 82 00 81 00 00", 0x6A80, nil}, // input shorter than the modulus
			{"00 87 07 9A 04 7C 02 82 00 00", 0x6A80, nil},       // no input
			{"00 87 07 9A 06 7C 05 82 00 81 00 00", 0x6A80, nil}, // bad TLV
			{"00 87 07 9A 05 7D 03 82 00 81 00", 0x6A80, nil},    // not 7C
			{"10 87 07 9A FF 7C 82 01 06 82 00 81 82 01 00" + strings.Repeat("FF", 245), 0x9000, nil},
			{"00 87 07 9A 0B" + strings.Repeat("FF", 11) + "00", 0x6A80, nil}, // input >= modulus
			{"10 87 07 9A 02 7C 00", 0x9000, nil},
			{"00 87 07 9C 02 7C 00", 0x6883, nil}, // chain broken by a different command
			{"10 CB 3F FF 03 5C 01 7E", 0x6884, nil},
		}},
		{"writes are refused and counted", []step{
			{selPIV, 0x9000, nil},
			{"00 DB 3F FF 06 5C 01 7E 53 01 00", 0x6982, writes(1)},
			{"00 47 00 9A 05 AC 03 80 01 07 00", 0x6982, writes(2)},
			{"00 FF FF FF 1B 03 9B 18 " + strings.Repeat("01", 24), 0x6D00, writes(3)},
			{"00 FE 07 9A 02 01 00", 0x6D00, writes(4)},
			{"00 FB 00 00", 0x6D00, writes(5)},
			{"00 FA 03 03", 0x6D00, writes(6)},
			{"10 DB 3F FF 02 5C 01", 0x6982, writes(7)},
			{ver(vpiv.DefaultPIN), 0x9000, writes(7)},
		}},
		{"YubiKey-only instructions answer 6D00", []step{
			{selPIV, 0x9000, nil},
			{"00 FD 00 00 00", 0x6D00, nil}, // GET VERSION
			{"00 F8 00 00 00", 0x6D00, nil}, // GET SERIAL
			{"00 F7 00 9A 00", 0x6D00, nil}, // GET METADATA
			{"00 F9 9A 00 00", 0x6D00, nil}, // ATTEST
			{"00 01 00 00", 0x6D00, writes(0)},
		}},
		{"classes and lengths", []step{
			{selPIV, 0x9000, nil},
			{"80 CB 3F FF 03 5C 01 7E 00", 0x6E00, nil},
			{"80 CA 9F 7F 00", 0x6E00, nil}, // CPLC only from the card manager
			{"01 CB 3F FF 03 5C 01 7E 00", 0x6881, nil},
			{"00 CB 3F", 0x6700, nil},
			{"00 CB 3F FF 05 5C 01 7E", 0x6700, nil},
			{"00 CB 3F FF 00 00 03 5C 01 7E 00 00", 0x6700, nil}, // extended length
			{getDisc, 0x9000, nil},
		}},
	}
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) {
			c, _ := newNHS(t, testpki.RSA2048)
			for i, s := range sc.steps {
				data, sw := send(t, c, unhex(t, s.apdu))
				if sw != s.sw {
					t.Fatalf("step %d (%s): SW %04X, want %04X", i, s.apdu, sw, s.sw)
				}
				if s.check != nil {
					s.check(t, c, data)
				}
			}
		})
	}
}

func TestReset(t *testing.T) {
	c, _ := newNHS(t, testpki.P256)
	selectPIV(t, c)
	if sw := verifyPIN(t, c, vpiv.DefaultPIN); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}
	verifyPIN(t, c, "000000") // one wrong try: counters survive a reset
	c.Reset()
	if c.Verified() {
		t.Error("verified after reset")
	}
	if _, sw := send(t, c, unhex(t, getCHUID)); sw != 0x6A82 {
		t.Errorf("GET DATA after reset without SELECT: %04X, want 6A82", sw)
	}
	selectPIV(t, c)
	if _, sw := send(t, c, unhex(t, verEmpty)); sw != 0x63C2 {
		t.Errorf("PIN status after reset: %04X, want 63C2", sw)
	}
}

func TestCHUID(t *testing.T) {
	c, creds := newNHS(t, testpki.RSA2048)
	selectPIV(t, c)
	r := getData(t, c, vpiv.TagCHUID)
	if r.SW != 0x9000 {
		t.Fatalf("SW %04X", r.SW)
	}
	outer, err := pcsc.ParseTLV(r.Data)
	if err != nil || len(outer) != 1 || outer[0].Tag != 0x53 {
		t.Fatalf("CHUID % X: %v", r.Data, err)
	}
	objs, err := pcsc.ParseTLV(outer[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	guid, _ := pcsc.FindTLV(objs, 0x34)
	if !bytes.Equal(guid, c.GUID()) || len(guid) != 16 {
		t.Errorf("GUID % X, want % X", guid, c.GUID())
	}
	fascn, _ := pcsc.FindTLV(objs, 0x30)
	if len(fascn) != 25 {
		t.Errorf("FASC-N of %d bytes", len(fascn))
	}
	exp, _ := pcsc.FindTLV(objs, 0x35)
	if want := creds.AuthCert.NotAfter.UTC().Format("20060102"); string(exp) != want {
		t.Errorf("expiry %q, want %q", exp, want)
	}
	for _, tag := range []uint32{0x3E, 0xFE} {
		if v, ok := pcsc.FindTLV(objs, tag); !ok || len(v) != 0 {
			t.Errorf("tag %X: %v % X", tag, ok, v)
		}
	}
	// Two issued cards have different identities.
	c2, _ := newNHS(t, testpki.RSA2048)
	if bytes.Equal(c.GUID(), c2.GUID()) {
		t.Error("two NHS cards share a GUID")
	}
}

func TestEncodeFASCN(t *testing.T) {
	// The FASC-N many PIV test cards (and YubiKey's default CHUID) carry.
	want := unhex(t, "D4E739DA739CED39CE739D836858210842108421C84210C3EB")
	got, err := vpiv.EncodeFASCN("9999 9999 999999 0 1 0000000000 3 0000 1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("FASC-N\n got % X\nwant % X", got, want)
	}
	for _, bad := range []string{"", "123", "9999-9999-999999-0-1-000000000A-3-0000-1"} {
		if _, err := vpiv.EncodeFASCN(bad); err == nil {
			t.Errorf("EncodeFASCN(%q) accepted", bad)
		}
	}
}

// readCert reads and decodes the certificate container for slot.
func readCert(t *testing.T, tr pcsc.Transmitter, slot byte) (der []byte, info byte) {
	t.Helper()
	r := getData(t, tr, vpiv.CertTag(slot))
	if r.SW != 0x9000 {
		t.Fatalf("GET DATA %02X: SW %04X", slot, r.SW)
	}
	outer, err := pcsc.ParseTLV(r.Data)
	if err != nil || len(outer) != 1 || outer[0].Tag != 0x53 {
		t.Fatalf("container: %v", err)
	}
	objs, err := pcsc.ParseTLV(outer[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	der, _ = pcsc.FindTLV(objs, 0x70)
	ci, ok := pcsc.FindTLV(objs, 0x71)
	if !ok || len(ci) != 1 {
		t.Fatalf("CertInfo % X", ci)
	}
	if lrc, ok := pcsc.FindTLV(objs, 0xFE); !ok || len(lrc) != 0 {
		t.Errorf("no empty FE")
	}
	return der, ci[0]
}

func TestCertificates(t *testing.T) {
	creds := issue(t, testpki.CardSpec{DaysLeft: 60})
	old := issue(t, testpki.CardSpec{DaysLeft: -1, KeyType: testpki.P256})
	cfg := vpiv.NHSConfig(creds)
	cfg.Slots[vpiv.SlotSignature] = vpiv.Slot{Cert: creds.SignCert, Key: creds.SignKey, Compress: true}
	cfg.Slots[0x82] = vpiv.Slot{Cert: old.AuthCert, Key: old.AuthKey}
	cfg.Slots[0x95] = vpiv.Slot{Cert: old.SignCert, Key: old.SignKey, Compress: true}
	c, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	selectPIV(t, c)
	for _, tc := range []struct {
		slot     byte
		want     *x509.Certificate
		compress bool
	}{
		{0x9A, creds.AuthCert, false},
		{0x9C, creds.SignCert, true},
		{0x82, old.AuthCert, false},
		{0x95, old.SignCert, true},
	} {
		t.Run(fmt.Sprintf("%02X", tc.slot), func(t *testing.T) {
			der, info := readCert(t, c, tc.slot)
			if tc.compress {
				if info != 0x01 {
					t.Fatalf("CertInfo %02X, want 01", info)
				}
				zr, err := gzip.NewReader(bytes.NewReader(der))
				if err != nil {
					t.Fatal(err)
				}
				if der, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if info != 0x00 {
				t.Fatalf("CertInfo %02X, want 00", info)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Equal(tc.want) {
				t.Error("certificate differs")
			}
		})
	}
	r := getData(t, c, vpiv.TagKeyHistory)
	if r.SW != 0x9000 || !bytes.HasPrefix(r.Data, unhex(t, "53 08 C1 01 02 C2 01 00 FE 00")) {
		t.Errorf("key history % X SW %04X", r.Data, r.SW)
	}
	if sw := getData(t, c, vpiv.CertTag(0x83)).SW; sw != 0x6A82 {
		t.Errorf("empty retired slot: %04X", sw)
	}
}

func TestObjectsOverride(t *testing.T) {
	creds := issue(t, testpki.CardSpec{DaysLeft: 400})
	cfg := vpiv.NHSConfig(creds)
	cfg.Objects = map[uint32][]byte{
		vpiv.TagCHUID:      nil,
		vpiv.TagDiscovery:  nil,
		0x5FC109:           unhex(t, "53 03 01 01 41"),
		vpiv.CertTag(0x9E): unhex(t, "53 02 70 00"),
	}
	c, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	selectPIV(t, c)
	for tag, want := range map[uint32]uint16{vpiv.TagCHUID: 0x6A82, vpiv.TagDiscovery: 0x6A82, 0x5FC109: 0x9000, 0x5FC101: 0x9000, vpiv.TagCCC: 0x9000} {
		if got := getData(t, c, tag).SW; got != want {
			t.Errorf("tag %X: SW %04X, want %04X", tag, got, want)
		}
	}
}

// TestSign signs with every algorithm and verifies with the certificate's public key.
func TestSign(t *testing.T) {
	for _, kt := range testpki.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			c, creds := newNHS(t, kt)
			selectPIV(t, c)
			msg := []byte("origin-bound challenge")
			for _, slot := range []byte{vpiv.SlotAuthentication, vpiv.SlotSignature} {
				cert := creds.AuthCert
				if slot == vpiv.SlotSignature {
					cert = creds.SignCert
				}
				if sw := verifyPIN(t, c, vpiv.DefaultPIN); sw != 0x9000 {
					t.Fatalf("VERIFY: %04X", sw)
				}
				before := c.APDUCount()
				switch pub := cert.PublicKey.(type) {
				case *rsa.PublicKey:
					alg := byte(vpiv.AlgRSA2048)
					if pub.N.BitLen() == 1024 {
						alg = vpiv.AlgRSA1024
					}
					digest := sha256.Sum256(msg)
					r := generalAuthenticate(t, c, alg, slot, pkcs1v15(t, pub.Size(), digest[:]))
					if r.SW != 0x9000 {
						t.Fatalf("slot %02X: SW %04X", slot, r.SW)
					}
					if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], signatureOf(t, r.Data)); err != nil {
						t.Errorf("slot %02X: %v", slot, err)
					}
					if kt == testpki.RSA2048 {
						// 266 bytes in two chained commands, 264 bytes out with one GET RESPONSE.
						if got := c.INSLog()[before:]; !bytes.Equal(got, []byte{0x87, 0x87, 0xC0}) {
							t.Errorf("INS sequence % X, want 87 87 C0", got)
						}
					}
				case *ecdsa.PublicKey:
					var digest []byte
					alg := byte(vpiv.AlgECCP256)
					if pub.Curve.Params().BitSize == 384 {
						h := sha512.Sum384(msg)
						digest, alg = h[:], vpiv.AlgECCP384
					} else {
						h := sha256.Sum256(msg)
						digest = h[:]
					}
					r := generalAuthenticate(t, c, alg, slot, digest)
					if r.SW != 0x9000 {
						t.Fatalf("slot %02X: SW %04X", slot, r.SW)
					}
					if !ecdsa.VerifyASN1(pub, digest, signatureOf(t, r.Data)) {
						t.Errorf("slot %02X: signature does not verify", slot)
					}
					// A hash of the wrong length is refused.
					if sw := generalAuthenticate(t, c, alg, vpiv.SlotAuthentication, digest[:20]).SW; sw != 0x6A80 {
						t.Errorf("short hash: SW %04X, want 6A80", sw)
					}
				}
			}
			if got := c.Signatures(); got != 2 {
				t.Errorf("Signatures = %d, want 2", got)
			}
			if c.WriteCount() != 0 {
				t.Error("signing counted as a write")
			}
		})
	}
}

// pkcs1v15 builds the EMSA-PKCS1-v1_5 block for a SHA-256 digest.
func pkcs1v15(t *testing.T, k int, digest []byte) []byte {
	t.Helper()
	prefix := unhex(t, "3031300d060960864801650304020105000420")
	tlen := len(prefix) + len(digest)
	em := make([]byte, k)
	em[1] = 0x01
	for i := 2; i < k-tlen-1; i++ {
		em[i] = 0xFF
	}
	copy(em[k-tlen:], append(prefix, digest...))
	return em
}

func TestRawRSAIsDecryption(t *testing.T) {
	c, creds := newNHS(t, testpki.RSA2048)
	selectPIV(t, c)
	verifyPIN(t, c, vpiv.DefaultPIN)
	pub := creds.AuthCert.PublicKey.(*rsa.PublicKey)
	secret := []byte("session key")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
	if err != nil {
		t.Fatal(err)
	}
	r := generalAuthenticate(t, c, vpiv.AlgRSA2048, vpiv.SlotAuthentication, ct)
	if r.SW != 0x9000 {
		t.Fatalf("SW %04X", r.SW)
	}
	em := signatureOf(t, r.Data)
	// em = 00 02 <nonzero padding> 00 secret
	if em[0] != 0 || em[1] != 2 || !bytes.HasSuffix(em, append([]byte{0}, secret...)) {
		t.Errorf("decrypted block % X", em)
	}
	// Cross-check the primitive: em^e mod n == ct.
	m := new(big.Int).SetBytes(em)
	if got := m.Exp(m, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, len(ct))); !bytes.Equal(got, ct) {
		t.Error("raw RSA result does not invert")
	}
}

func TestECDHAndCardAuthentication(t *testing.T) {
	km, err := testpki.Key(testpki.P256, 40)
	if err != nil {
		t.Fatal(err)
	}
	cak, err := testpki.Key(testpki.P384, 41)
	if err != nil {
		t.Fatal(err)
	}
	c, err := vpiv.New(vpiv.Config{Slots: map[byte]vpiv.Slot{
		vpiv.SlotKeyManagement:      {Key: km},
		vpiv.SlotCardAuthentication: {Key: cak},
	}})
	if err != nil {
		t.Fatal(err)
	}
	selectPIV(t, c)
	// 9E needs no PIN.
	digest := sha512.Sum384([]byte("card authentication"))
	r := generalAuthenticate(t, c, vpiv.AlgECCP384, vpiv.SlotCardAuthentication, digest[:])
	if r.SW != 0x9000 || !ecdsa.VerifyASN1(cak.Public().(*ecdsa.PublicKey), digest[:], signatureOf(t, r.Data)) {
		t.Fatalf("9E signature: SW %04X", r.SW)
	}
	// ECDH with 9D, after VERIFY.
	peer, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inner := pcsc.AppendTLV(pcsc.AppendTLV(nil, 0x82, nil), 0x85, peer.PublicKey().Bytes())
	cmd := pcsc.Command{INS: 0x87, P1: vpiv.AlgECCP256, P2: vpiv.SlotKeyManagement, Data: pcsc.AppendTLV(nil, 0x7C, inner), Le: 0}
	if sw := exchange(t, c, cmd).SW; sw != 0x6982 {
		t.Fatalf("ECDH without PIN: %04X, want 6982", sw)
	}
	verifyPIN(t, c, vpiv.DefaultPIN)
	r = exchange(t, c, cmd)
	if r.SW != 0x9000 {
		t.Fatalf("ECDH: SW %04X", r.SW)
	}
	kmPub, err := km.Public().(*ecdsa.PublicKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.ECDH(kmPub)
	if err != nil {
		t.Fatal(err)
	}
	if got := signatureOf(t, r.Data); !bytes.Equal(got, want) {
		t.Errorf("shared secret % X, want % X", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	creds := issue(t, testpki.CardSpec{DaysLeft: 400})
	other := issue(t, testpki.CardSpec{DaysLeft: 400, KeyType: testpki.P256})
	cases := map[string]vpiv.Config{
		"short PIN":         {PIN: "12345"},
		"letters in PIN":    {PIN: "12345a"},
		"long PIN":          {PIN: "123456789"},
		"short PUK":         {PUK: "1234567"},
		"GUID length":       {GUID: []byte{1, 2, 3}},
		"FASC-N length":     {FASCN: []byte{1}},
		"bad slot":          {Slots: map[byte]vpiv.Slot{0x9B: {Cert: creds.AuthCert}}},
		"key and cert":      {Slots: map[byte]vpiv.Slot{0x9A: {Cert: creds.AuthCert, Key: other.AuthKey}}},
		"tries above limit": {PINTriesLeft: 4},
		"retries above 15":  {PUKRetries: 16},
		"negative tries":    {PUKTriesLeft: -2},
		"RSA not in memory": {Slots: map[byte]vpiv.Slot{0x9A: {Key: opaqueSigner{creds.AuthKey}}}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := vpiv.New(cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
	c, err := vpiv.New(vpiv.Config{PINTriesLeft: 1, PUKTriesLeft: -1, PIN: "87654321"})
	if err != nil {
		t.Fatal(err)
	}
	if c.PINTries() != 1 || c.PUKTries() != 0 || c.PIN() != "87654321" || c.PUK() != vpiv.DefaultPUK {
		t.Errorf("tries %d/%d PIN %q", c.PINTries(), c.PUKTries(), c.PIN())
	}
	if !bytes.Equal(c.ATR(), vpiv.DefaultATR) {
		t.Errorf("ATR % X", c.ATR())
	}
}

type opaqueSigner struct{ crypto.Signer }

// TestDefaultATR checks the ATR's structure and check byte, so pcscd accepts it.
func TestDefaultATR(t *testing.T) {
	atr := vpiv.DefaultATR
	var x byte
	for _, b := range atr[1:] {
		x ^= b
	}
	if x != 0 {
		t.Errorf("TCK does not check: XOR %02X", x)
	}
	if atr[0] != 0x3B || atr[1]&0x0F != 6 {
		t.Errorf("ATR header % X", atr[:2])
	}
}

func TestConcurrentUse(t *testing.T) {
	c, _ := newNHS(t, testpki.P256)
	selectPIV(t, c)
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 50; j++ {
				c.Transmit(unhex(t, getDisc))
				c.PINTries()
				c.INSLog()
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	if got := c.APDUCount(); got != 201 {
		t.Errorf("APDUCount = %d, want 201", got)
	}
	c.ClearLog()
	if c.APDUCount() != 0 || len(c.INSLog()) != 0 {
		t.Error("ClearLog left entries")
	}
}

func BenchmarkTransmitInProcess(b *testing.B) {
	c, _ := newNHS(b, testpki.RSA2048)
	selectPIV(b, c)
	apdu := unhex(b, getDisc)
	for b.Loop() {
		c.Transmit(apdu)
	}
}
