package vseries8

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

var _ vcard.Card = (*Card)(nil)

var (
	pkiOnce sync.Once
	pkiVal  *testpki.PKI
	pkiErr  error
)

func testPKI(t *testing.T) *testpki.PKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = testpki.New() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func newCard(t *testing.T, edit func(*Config)) (*Card, *testpki.CardCreds) {
	t.Helper()
	creds, err := testPKI(t).IssueCard(testpki.CardSpec{UUID: "555253521108", Surname: "Random", Forename: "UserQ", DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := NHSConfig(creds)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, creds
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// tx sends a command given in hex and returns the response data and SW.
func tx(t *testing.T, c *Card, cmd string) ([]byte, uint16) {
	t.Helper()
	return txb(t, c, mustHex(t, cmd))
}

func txb(t *testing.T, c *Card, cmd []byte) ([]byte, uint16) {
	t.Helper()
	resp, err := c.Transmit(cmd)
	if err != nil {
		t.Fatalf("Transmit(% X): %v", cmd, err)
	}
	if len(resp) < 2 {
		t.Fatalf("Transmit(% X): %d-byte response", cmd, len(resp))
	}
	n := len(resp) - 2
	return resp[:n], uint16(resp[n])<<8 | uint16(resp[n+1])
}

func wantSW(t *testing.T, c *Card, cmd string, want uint16) []byte {
	t.Helper()
	data, sw := tx(t, c, cmd)
	if sw != want {
		t.Fatalf("%s: SW %04X, want %04X", cmd, sw, want)
	}
	return data
}

const (
	selApplet = "00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02"
	selMF     = "00 A4 00 00 02 3F 00 00"
	selAWP    = "00 A4 00 00 02 50 11 00"
)

func enterAWP(t *testing.T, c *Card) {
	t.Helper()
	wantSW(t, c, selApplet, 0x9000)
	wantSW(t, c, selMF, 0x9000)
	wantSW(t, c, selAWP, 0x9000)
}

func verifyCmd(pin string) []byte {
	b := mustHexNoT("00 20 00 81 40")
	return append(b, pad([]byte(pin), 64)...)
}

func mustHexNoT(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestCPLCAndApplets(t *testing.T) {
	c, _ := newCard(t, func(cfg *Config) { cfg.Serial = [4]byte{0xDE, 0xAD, 0xBE, 0xEF} })
	wantSW(t, c, "00 A4 04 0C 08 A0 00 00 00 03 00 00 00", 0x9000)
	cplc := wantSW(t, c, "80 CA 9F 7F 2D", 0x9000)
	if len(cplc) != 0x2D || !bytes.Equal(cplc[:3], []byte{0x9F, 0x7F, 0x2A}) {
		t.Fatalf("CPLC % X", cplc)
	}
	if got := cplc[15:19]; !bytes.Equal(got, []byte{0xDE, 0xAD, 0xBE, 0xEF}) {
		t.Errorf("serial at 15-18 = % X", got)
	}
	// Other Oberthur AIDs are not on this card; file commands need the applet.
	wantSW(t, c, "00 A4 04 0C 10 A0 00 00 00 77 01 00 70 0A 10 00 F1 00 00 01 00", 0x6A82)
	wantSW(t, c, selMF, 0x6A82)
	wantSW(t, c, "00 B0 00 00 00", 0x6D00)
	wantSW(t, c, selApplet, 0x9000)
	wantSW(t, c, "80 CA 9F 7F 2D", 0x6A88) // the applet does not know the CPLC

	c2, _ := newCard(t, func(cfg *Config) { cfg.AID = AIDIASECC })
	wantSW(t, c2, selApplet, 0x6A82)
	wantSW(t, c2, "00 A4 04 0C 10 A0 00 00 00 77 01 08 00 07 00 00 FE 00 00 01 00", 0x9000)
}

func TestFileSystem(t *testing.T) {
	c, creds := newCard(t, func(cfg *Config) { cfg.CertSlack = 100 })
	wantSW(t, c, selApplet, 0x9000)
	fci := wantSW(t, c, selMF, 0x9000)
	if !bytes.HasPrefix(fci, []byte{0x6F}) || !bytes.Contains(fci, []byte{0x82, 0x01, 0x38, 0x83, 0x02, 0x3F, 0x00}) {
		t.Errorf("MF FCI % X", fci)
	}
	wantSW(t, c, "00 A4 00 00 02 90 01 00", 0x6A82) // not a child of the MF
	wantSW(t, c, selAWP, 0x9000)

	// Token info: 32-byte space-padded label and flags.
	fci = wantSW(t, c, "00 A4 00 00 02 10 00 00", 0x9000)
	if !bytes.Contains(fci, []byte{0x80, 0x02, 0x00, 0x24}) {
		t.Errorf("token info FCI % X, want size 36", fci)
	}
	info := wantSW(t, c, "00 B0 00 00 24", 0x9000)
	if got := strings.TrimRight(string(info[:32]), " "); got != "555253521108_RANDOM_USERQ" {
		t.Errorf("label %q", got)
	}

	// Containers: linear records of 141 bytes, the GUID after the six FIDs.
	fci = wantSW(t, c, "00 A4 00 00 02 30 00 00", 0x9000)
	if !bytes.Contains(fci, []byte{0x82, 0x05, 0x04, 0x21, 0x00, 0x8D, 0x02}) {
		t.Errorf("containers FCI % X", fci)
	}
	wantSW(t, c, "00 B0 00 00 00", 0x6981)
	rec := wantSW(t, c, "00 B2 01 04 00", 0x9000)
	if len(rec) != ContainerRecLen || !bytes.Equal(rec[:6], []byte{0x10, 0x01, 0x30, 0x01, 0x20, 0x01}) {
		t.Errorf("record 1 % X", rec[:16])
	}
	rec = wantSW(t, c, "00 B2 02 04 00", 0x9000)
	if !bytes.Equal(rec[:12], []byte{0, 0, 0, 0, 0, 0, 0x10, 0x02, 0x30, 0x02, 0x20, 0x02}) {
		t.Errorf("record 2 % X", rec[:16])
	}
	if n := int(rec[12])<<8 | int(rec[13]); n != 0x26 || rec[14] != '{' || rec[14+n-1] != '}' {
		t.Errorf("record 2 GUID % X", rec[12:14+0x26])
	}
	wantSW(t, c, "00 B2 03 04 00", 0x6A83)

	// Object lists.
	wantSW(t, c, "00 A4 00 00 02 40 00 00", 0x9000)
	list := wantSW(t, c, "00 B0 00 00 14", 0x9000)
	if !bytes.HasPrefix(list, []byte{0xFF, 0x10, 0x01, 0x08, 0x00, 0xFF, 0x20, 0x01}) {
		t.Errorf("public list % X", list)
	}
	wantSW(t, c, "00 A4 00 00 02 50 00 00", 0x9000)
	list = wantSW(t, c, "00 B0 00 00 0F", 0x9000)
	if !bytes.Equal(list, mustHex(t, "FF 30 01 08 00 FF 30 02 08 00 00 00 00 00 00")) {
		t.Errorf("private list % X", list)
	}

	// The certificate, read in 256-byte chunks; the file is 100 bytes longer.
	wantSW(t, c, "00 A4 00 00 02 90 01 00", 0x9000)
	fci = wantSW(t, c, "00 A4 00 00 02 20 01 00", 0x9000)
	size := len(creds.AuthCert.Raw) + 100
	if !bytes.Contains(fci, []byte{0x80, 0x02, byte(size >> 8), byte(size)}) {
		t.Errorf("certificate FCI % X, want size %d", fci, size)
	}
	var got []byte
	for off := 0; ; off += 256 {
		data, sw := txb(t, c, []byte{0x00, 0xB0, byte(off >> 8), byte(off), 0x00})
		got = append(got, data...)
		if sw == 0x6282 {
			break
		}
		if sw != 0x9000 || off > 8192 {
			t.Fatalf("READ BINARY at %d: %04X", off, sw)
		}
	}
	if len(got) != size || !bytes.Equal(got[:len(creds.AuthCert.Raw)], creds.AuthCert.Raw) {
		t.Errorf("read %d bytes, not the certificate", len(got))
	}
	wantSW(t, c, "00 B0 7F 00 10", 0x6B00)

	// The certificate's info file: flags, label, ID = SHA-1 of the modulus, subject...
	wantSW(t, c, "00 A4 00 00 02 21 01 00", 0x9000)
	blob := wantSW(t, c, "00 B0 00 00 00", 0x6282)
	if !bytes.Contains(blob, creds.AuthCert.RawSubject) || !bytes.Contains(blob, []byte("Authentication")) {
		t.Errorf("certificate info % X", blob)
	}

	// Public key components.
	fci = wantSW(t, c, "00 A4 00 00 02 10 01 00", 0x9000)
	if !bytes.Contains(fci, []byte{0x82, 0x01, 0x12}) || !bytes.Contains(fci, []byte{0x85, 0x02, 0x08, 0x00}) {
		t.Errorf("public key FCI % X", fci)
	}
	n := wantSW(t, c, "80 B4 01 00 00", 0x9000)
	e := wantSW(t, c, "80 B4 02 00 00", 0x9000)
	pub := creds.AuthCert.PublicKey.(*rsa.PublicKey)
	if !bytes.Equal(n, pub.N.Bytes()) || !bytes.Equal(e, []byte{1, 0, 1}) {
		t.Errorf("public key read does not match the certificate")
	}
	wantSW(t, c, "80 B4 01 00 10", 0x6C00) // Le too short: 6C00 (256 encodes as 00)

	// Private keys cannot be read; DF 9002 is a sibling of 9001.
	wantSW(t, c, "00 A4 00 00 02 90 02 00", 0x9000)
	wantSW(t, c, "00 A4 00 00 02 30 01 00", 0x9000)
	wantSW(t, c, "00 B0 00 00 00", 0x6981)
	wantSW(t, c, "80 B4 01 00 00", 0x6985)

	if c.WriteCount() != 0 {
		t.Errorf("reads wrote %d times", c.WriteCount())
	}
}

func TestPIN(t *testing.T) {
	c, _ := newCard(t, nil)
	wantSW(t, c, selApplet, 0x9000)
	// The PIN is local to DF 5011.
	wantSW(t, c, "00 20 00 81", 0x6A88)
	wantSW(t, c, selMF, 0x9000)
	wantSW(t, c, selAWP, 0x9000)
	wantSW(t, c, "00 20 00 81", 0x63C3)
	wantSW(t, c, "00 20 00 80", 0x6A88)
	// Wrong PIN: one try per submission; empty VERIFY spends none.
	for left := 2; left >= 0; left-- {
		if _, sw := txb(t, c, verifyCmd("654321")); sw != 0x63C0|uint16(left) {
			t.Fatalf("wrong PIN: SW %04X, want 63C%X", sw, left)
		}
		if c.PINTries() != left {
			t.Fatalf("PINTries %d, want %d", c.PINTries(), left)
		}
		if left > 0 {
			wantSW(t, c, "00 20 00 81", 0x63C0|uint16(left))
		}
	}
	wantSW(t, c, "00 20 00 81", 0x6983)
	if _, sw := txb(t, c, verifyCmd(DefaultPIN)); sw != 0x6983 {
		t.Fatalf("correct PIN on a blocked card: %04X", sw)
	}
	// Unblock as OpenSC does it: VERIFY the SO PIN 84 (the PUK, padded to
	// 64), read the unblock code from file 2000, then 00 2C 00 01 with the
	// code and the new PIN. A wrong PUK costs a PUK try.
	verifySO := func(puk string) uint16 {
		_, sw := txb(t, c, append(mustHex(t, "00 20 00 84 40"), pad([]byte(puk), 64)...))
		return sw
	}
	unblock := func(code []byte, pin string) uint16 {
		cmd := append(mustHex(t, "00 2C 00 01 50"), code...)
		_, sw := txb(t, c, append(cmd, pad([]byte(pin), 64)...))
		return sw
	}
	wantSW(t, c, "00 20 00 04", 0x6A88) // no global SO PIN
	wantSW(t, c, "00 20 00 84", 0x63CA)
	if sw := unblock(c.UnblockCode(), "111111"); sw != 0x6982 {
		t.Fatalf("unblock without the SO PIN: %04X, want 6982", sw)
	}
	wantSW(t, c, "00 A4 00 00 02 20 00 00", 0x9000)
	wantSW(t, c, "00 B0 00 00 10", 0x6982) // file 2000 needs the SO PIN
	if sw := verifySO("6543210987654321"); sw != 0x63C9 || c.PUKTries() != 9 {
		t.Fatalf("wrong PUK: %04X, PUK tries %d", sw, c.PUKTries())
	}
	if sw := verifySO(DefaultPUK); sw != 0x9000 || c.PUKTries() != 10 || !c.SOVerified() {
		t.Fatalf("PUK: %04X, PUK tries %d", sw, c.PUKTries())
	}
	wantSW(t, c, "00 20 00 84", 0x9000)
	code := wantSW(t, c, "00 B0 00 00 10", 0x9000)
	if !bytes.Equal(code, c.UnblockCode()) {
		t.Fatalf("file 2000: % X, want the unblock code", code)
	}
	if sw := unblock(make([]byte, 16), "111111"); sw != 0x6A80 || c.PINTries() != 0 {
		t.Fatalf("unblock with a wrong code: %04X, PIN tries %d", sw, c.PINTries())
	}
	if sw := unblock(code, "111111"); sw != 0x9000 || c.PINTries() != 3 || c.PUKTries() != 10 || c.Verified() {
		t.Fatalf("unblock: %04X, tries %d/%d, verified %v", sw, c.PINTries(), c.PUKTries(), c.Verified())
	}
	wantSW(t, c, "80 2E 00 24", 0x9000)
	if c.SOVerified() {
		t.Fatal("SO PIN still verified after 80 2E 00 24")
	}
	if _, sw := txb(t, c, verifyCmd("111111")); sw != 0x9000 || !c.Verified() {
		t.Fatalf("new PIN: %04X", sw)
	}
	wantSW(t, c, "00 20 00 81", 0x9000)
	wantSW(t, c, "80 2E 00 21", 0x9000)
	if c.Verified() {
		t.Fatal("still verified after logout")
	}
	wantSW(t, c, "00 20 00 81", 0x63C3)
	// Change: 00 24 00 01 (the reference without its local bit, as OpenSC
	// sends it), old || new, each padded to 64.
	change := func(p2, oldPIN, newPIN string) uint16 {
		cmd := append(mustHex(t, "00 24 00 "+p2+" 80"), pad([]byte(oldPIN), 64)...)
		_, sw := txb(t, c, append(cmd, pad([]byte(newPIN), 64)...))
		return sw
	}
	if sw := change("81", "111111", "222222"); sw != 0x6A88 {
		t.Fatalf("change with P2 81: %04X, want 6A88", sw)
	}
	if sw := change("01", "999999", "222222"); sw != 0x63C2 {
		t.Fatalf("change with a wrong PIN: %04X", sw)
	}
	if sw := change("01", "111111", "222222"); sw != 0x9000 || c.PINTries() != 3 {
		t.Fatalf("change: %04X", sw)
	}
	if c.WriteCount() != 2 {
		t.Errorf("WriteCount %d, want 2 (unblock, change)", c.WriteCount())
	}
	if _, sw := txb(t, c, verifyCmd("222222")); sw != 0x9000 {
		t.Fatalf("changed PIN: %04X", sw)
	}
	// A short VERIFY is a length error, not a wrong PIN.
	wantSW(t, c, "00 20 00 81 06 31 32 33 34 35 36", 0x6700)
	if c.PINTries() != 3 {
		t.Errorf("a malformed VERIFY spent a try")
	}
	c.Reset()
	if c.Verified() {
		t.Error("Reset kept the PIN verified")
	}
}

func TestSign(t *testing.T) {
	c, creds := newCard(t, nil)
	enterAWP(t, c)
	digest := sha256.Sum256([]byte("challenge"))
	di := append(mustHex(t, "3031300d060960864801650304020105000420"), digest[:]...)
	pso := append(append([]byte{0x00, 0x2A, 0x9E, 0x9A, byte(len(di))}, di...), 0x00)

	wantSW(t, c, "00 22 41 B6 03 80 01 11", 0x6985) // no key selected
	wantSW(t, c, "00 A4 00 00 02 90 02 00", 0x9000)
	wantSW(t, c, "00 A4 00 00 02 30 01 00", 0x9000)
	if _, sw := txb(t, c, pso); sw != 0x6985 {
		t.Fatalf("PSO without MSE: %04X", sw)
	}
	wantSW(t, c, "00 22 41 B6 03 80 01 12", 0x6A80)
	wantSW(t, c, "00 22 41 B6 03 80 01 11", 0x9000)
	if _, sw := txb(t, c, pso); sw != 0x6982 {
		t.Fatalf("PSO without PIN: %04X", sw)
	}
	if _, sw := txb(t, c, verifyCmd(DefaultPIN)); sw != 0x9000 {
		t.Fatalf("VERIFY from DF 9002: %04X", sw)
	}
	sig, sw := txb(t, c, pso)
	if sw != 0x9000 {
		t.Fatalf("PSO: %04X", sw)
	}
	if err := rsa.VerifyPKCS1v15(creds.AuthCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature does not verify with the authentication certificate: %v", err)
	}
	// The signing key, in its own file.
	wantSW(t, c, "00 A4 00 00 02 30 02 00", 0x9000)
	if _, sw := txb(t, c, pso); sw != 0x6985 {
		t.Fatalf("PSO after selecting another key without MSE: %04X", sw)
	}
	wantSW(t, c, "00 22 41 B6 03 80 01 11", 0x9000)
	sig, _ = txb(t, c, pso)
	if err := rsa.VerifyPKCS1v15(creds.SignCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature does not verify with the signing certificate: %v", err)
	}
	// DigestInfo longer than 96 bytes.
	long := append([]byte{0x00, 0x2A, 0x9E, 0x9A, 97}, make([]byte, 97)...)
	if _, sw := txb(t, c, append(long, 0)); sw != 0x6700 {
		t.Fatalf("PSO of 97 bytes: %04X", sw)
	}
	if c.Signatures() != 2 {
		t.Errorf("Signatures %d, want 2", c.Signatures())
	}
}

func TestUnknownCommands(t *testing.T) {
	c, _ := newCard(t, nil)
	wantSW(t, c, "00 FD 00 00 00", 0x6D00) // before the applet
	enterAWP(t, c)
	for _, cmd := range []string{"00 87 07 9A 00", "00 CB 3F FF 05 5C 03 5F C1 02 00", "00 D6 00 00 01 00", "00 CA 5F 81 00"} {
		wantSW(t, c, cmd, 0x6D00)
	}
	wantSW(t, c, "A0 B0 00 00 00", 0x6E00)
	wantSW(t, c, "00 B0", 0x6700)
	if n := len(c.INSLog()); n != 10 {
		t.Errorf("INSLog has %d entries, want 10", n)
	}
	c.ClearLog()
	if c.APDUCount() != 0 {
		t.Error("ClearLog kept entries")
	}
}

func TestConfig(t *testing.T) {
	_, creds := newCard(t, nil)
	cfg, err := NHSConfig(creds)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"no key":      func(c *Config) { c.Auth = nil },
		"long PIN":    func(c *Config) { c.PIN = bytes.Repeat([]byte("1"), 65) },
		"no PUK":      func(c *Config) { c.PUK = nil },
		"same index":  func(c *Config) { c.Sign.Index = c.Auth.Index },
		"tries > 15":  func(c *Config) { c.PINTries = 16 },
		"bad cert":    func(c *Config) { c.Auth = &Key{Key: c.Auth.Key, Cert: []byte{0x30, 0x00}} },
		"ECDSA creds": nil,
	} {
		t.Run(name, func(t *testing.T) {
			if edit == nil {
				ec, err := testPKI(t).IssueCard(testpki.CardSpec{KeyType: testpki.P256})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := NHSConfig(ec); err == nil {
					t.Fatal("NHSConfig accepted ECDSA keys")
				}
				return
			}
			c := cfg
			a, s := *cfg.Auth, *cfg.Sign
			c.Auth, c.Sign = &a, &s
			edit(&c)
			if _, err := New(c); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestNewNHS(t *testing.T) {
	c, err := NewNHS(testPKI(t), testpki.CardSpec{UUID: "123456789012", KeyType: testpki.RSA1024, KeyIndex: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.ATR(), ATROberthur64k) {
		t.Errorf("ATR % X", c.ATR())
	}
	enterAWP(t, c)
	wantSW(t, c, "00 A4 00 00 02 90 01 00", 0x9000)
	wantSW(t, c, "00 A4 00 00 02 20 01 00", 0x9000)
	der := wantSW(t, c, "00 B0 00 00 00", 0x9000)
	for off := 256; ; off += 256 {
		data, sw := txb(t, c, []byte{0x00, 0xB0, byte(off >> 8), byte(off), 0x00})
		der = append(der, data...)
		if sw != 0x9000 {
			break
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "123456789012_TEST_CARDHOLDER" || cert.PublicKey.(*rsa.PublicKey).N.BitLen() != 1024 {
		t.Errorf("certificate %s, %d bits", cert.Subject, cert.PublicKey.(*rsa.PublicKey).N.BitLen())
	}
}

// TestOpenSCShapes checks what OpenSC's oberthur driver and AWP emulator
// rely on: both card-manager AID forms, SELECT PARENT, the size of
// non-transparent files in FCI tag 85, the private key info layout with
// dates and subject, the info flags as key usage, and PSO DECIPHER with
// command chaining.
func TestOpenSCShapes(t *testing.T) {
	c, creds := newCard(t, nil)
	wantSW(t, c, "00 A4 04 0C 07 A0 00 00 00 03 00 00", 0x9000)
	wantSW(t, c, "80 CA 9F 7F 2D", 0x9000)
	wantSW(t, c, "00 A4 04 0C 08 A0 00 00 00 03 00 00 00", 0x9000)
	wantSW(t, c, "00 A4 04 0C 04 A0 00 00 00", 0x6A82) // shorter than an RID
	enterAWP(t, c)
	fciOf := wantSW(t, c, "00 A4 00 00 02 30 00 00", 0x9000)
	if !bytes.Contains(fciOf, mustHex(t, "82 05 04 21 00 8D 02")) || !bytes.Contains(fciOf, mustHex(t, "85 02 01 1A")) {
		t.Errorf("containers FCI % X: want 82 05 04 21 008D 02 and 85 02 011A", fciOf)
	}
	// SELECT PARENT from an EF's DF: 3000 is in 5011, whose parent is 3F00.
	if f := wantSW(t, c, "00 A4 03 00 00", 0x9000); !bytes.Contains(f, mustHex(t, "83 02 3F 00")) {
		t.Errorf("SELECT PARENT from 5011 answered % X, want 3F00", f)
	}
	wantSW(t, c, "00 A4 03 00 00", 0x6A82) // the MF has no parent
	enterAWP(t, c)
	wantSW(t, c, "00 A4 00 00 02 90 02 00", 0x9000)
	info := wantSW(t, c, "00 A4 00 00 02 31 01 00", 0x9000)
	_ = info
	data, sw := tx(t, c, "00 B0 00 00 00")
	if sw != 0x9000 && sw != 0x6282 {
		t.Fatalf("read 3101: %04X", sw)
	}
	if flags := uint16(data[0])<<8 | uint16(data[1]); flags != 0x0430 {
		t.Errorf("authentication key flags %04X, want 0430 (decrypt, sign, unwrap)", flags)
	}
	off := 2
	field := func() []byte {
		n := int(data[off])<<8 | int(data[off+1])
		v := data[off+2 : off+2+n]
		off += 2 + n
		return v
	}
	if l := field(); string(l) != "Authentication" {
		t.Errorf("label %q", l)
	}
	id := field()
	dates := string(data[off : off+16])
	off += 16
	if want := creds.AuthCert.NotBefore.UTC().Format("20060102") + creds.AuthCert.NotAfter.UTC().Format("20060102"); dates != want {
		t.Errorf("dates %q, want %q", dates, want)
	}
	if subject := field(); !bytes.Equal(subject, creds.AuthCert.RawSubject) {
		t.Errorf("subject % X", subject)
	}
	if len(id) != 20 {
		t.Errorf("ID of %d bytes", len(id))
	}
	// Decipher with the authentication key, 2048-bit: 8 bytes chained, then the rest.
	pub := creds.AuthCert.PublicKey.(*rsa.PublicKey)
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, []byte("session key"))
	if err != nil {
		t.Fatal(err)
	}
	wantSW(t, c, "00 A4 00 00 02 30 01 00", 0x9000)
	wantSW(t, c, "00 22 41 B8 03 80 01 11", 0x9000)
	first := append(append(mustHex(t, "10 2A 80 86 08"), ct[:8]...), 0x00)
	if _, sw := txb(t, c, first); sw != 0x6982 {
		t.Fatalf("decipher without the PIN: %04X", sw)
	}
	if _, sw := txb(t, c, verifyCmd(DefaultPIN)); sw != 0x9000 {
		t.Fatal("VERIFY")
	}
	wantSW(t, c, "00 A4 00 00 02 30 01 00", 0x9000)
	wantSW(t, c, "00 22 41 B8 03 80 01 11", 0x9000)
	if _, sw := txb(t, c, first); sw != 0x9000 {
		t.Fatalf("chained first part: %04X", sw)
	}
	rest := append(append([]byte{0x00, 0x2A, 0x80, 0x86, byte(len(ct) - 8)}, ct[8:]...), byte(len(ct)-8))
	if pt, sw := txb(t, c, rest); sw != 0x9000 || string(pt) != "session key" {
		t.Fatalf("decipher: %q %04X", pt, sw)
	}
	// The signing key does not decipher.
	wantSW(t, c, "00 A4 00 00 02 30 02 00", 0x9000)
	wantSW(t, c, "00 22 41 B8 03 80 01 11", 0x6985)
}
