//go:build linux

package series8_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/series8"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// OpenSC is the independent reference for the series 8 card: its
// "oberthur" card driver (card-oberthur.c) and AWP emulator
// (pkcs15-oberthur.c) were written against real Oberthur AuthentIC/AWP
// cards. These tests run OpenSC's own tools against the virtual series 8
// card through the private pcscd + vpcd, as a user would.

// openSCModule is where Debian's opensc-pkcs11 installs OpenSC's PKCS#11 module.
const openSCModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

// openSCConf restricts OpenSC to its oberthur driver (its ATR table holds
// the virtual card's ATR) and turns off its file and PIN caches, so every
// run reads the card.
const openSCConf = `app default {
	debug = 0;
	card_drivers = oberthur;
	enable_default_driver = false;
	disable_popups = true;
	framework pkcs15 {
		use_file_caching = no;
		use_pin_caching = false;
	}
}
`

// requireOpenSC skips without OpenSC's tools (fails under CI=true) and
// points OpenSC at openSCConf. The private pcscd's socket reaches the tools
// through PCSCLITE_CSOCK_NAME, which pcsctest sets in this process.
func requireOpenSC(t *testing.T) *pcsctest.PCSCD {
	t.Helper()
	for _, tool := range []string{"opensc-tool", "pkcs15-tool", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("OpenSC test cannot run in CI: %v (run scripts/setup)", err)
			}
			t.Skipf("OpenSC is not installed: %v", err)
		}
	}
	p := pcsctest.Require(t)
	conf := filepath.Join(t.TempDir(), "opensc.conf")
	if err := os.WriteFile(conf, []byte(openSCConf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENSC_CONF", conf)
	return p
}

// openSCCard is a virtual series 8 card in vpcd slot 0 for OpenSC's tools.
type openSCCard struct {
	vc     *vseries8.Card
	creds  *testpki.CardCreds
	reader string
}

func newOpenSCCard(t *testing.T) *openSCCard {
	t.Helper()
	p := requireOpenSC(t)
	vc, creds := newVCard(t, testpki.RSA2048, nil)
	p.Insert(t, 0, vc, vcard.Options{})
	p.WaitCard(t, 0, true)
	return &openSCCard{vc: vc, creds: creds, reader: pcsctest.ReaderNames[0]}
}

// run runs an OpenSC tool and returns its combined output and error.
func (o *openSCCard) run(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	return string(out), err
}

// mustRun runs a tool that must succeed.
func (o *openSCCard) mustRun(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, err := o.run(t, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return out
}

// p11 runs pkcs11-tool with OpenSC's module on the card's slot.
func (o *openSCCard) p11(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return o.run(t, "pkcs11-tool", append([]string{"--module", openSCModule}, args...)...)
}

// keyID is the AWP object ID of a key: the SHA-1 of its modulus, in hex.
func keyID(pub crypto.PublicKey) string {
	sum := sha1.Sum(pub.(*rsa.PublicKey).N.Bytes())
	return hex.EncodeToString(sum[:])
}

// TestOpenSCReadsSeries8 walks OpenSC's tools through the virtual card:
// connect with the oberthur driver, list and read both certificates, count
// PIN tries through PKCS#11 login, and sign with OpenSC's APDU sequence.
func TestOpenSCReadsSeries8(t *testing.T) {
	o := newOpenSCCard(t)
	vc, creds := o.vc, o.creds

	t.Run("connect", func(t *testing.T) {
		vc.ClearLog()
		out := o.mustRun(t, "opensc-tool", "-r", o.reader, "-c", "oberthur", "-n")
		if !strings.Contains(out, "AuthentIC") {
			t.Errorf("opensc-tool -n: %q, want OpenSC's AuthentIC card name", out)
		}
		apdus := vc.APDUs()
		if len(apdus) == 0 || !bytes.Equal(apdus[0], []byte{0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00}) {
			t.Errorf("OpenSC's first command % X, want its 7-byte card manager SELECT", apdus[0])
		}
		t.Logf("OpenSC start-up: %d APDUs", len(apdus))
	})

	t.Run("certificates", func(t *testing.T) {
		vc.ClearLog()
		out := o.mustRun(t, "pkcs15-tool", "-r", o.reader, "--list-certificates")
		t.Logf("pkcs15-tool --list-certificates: %d APDUs", vc.APDUCount())
		for label, cert := range map[string][]byte{"Authentication": creds.AuthCert.Raw, "Signature": creds.SignCert.Raw} {
			c := creds.AuthCert
			if label == "Signature" {
				c = creds.SignCert
			}
			id := keyID(c.PublicKey)
			if !strings.Contains(out, "X.509 Certificate ["+label+"]") || !strings.Contains(out, id) {
				t.Errorf("--list-certificates lacks %s with ID %s:\n%s", label, id, out)
				continue
			}
			pemOut := o.mustRun(t, "pkcs15-tool", "-r", o.reader, "--read-certificate", id)
			blk, _ := pem.Decode([]byte(pemOut[strings.Index(pemOut, "-----BEGIN"):]))
			if blk == nil || !bytes.Equal(blk.Bytes, cert) {
				t.Errorf("--read-certificate %s (%s) is not the card's certificate byte for byte:\n%s", id, label, pemOut)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		s := openConn(t, o.reader, zaptest.NewLogger(t))
		driverTries := func() int {
			c, err := series8.Open(context.Background(), s, zaptest.NewLogger(t))
			if err != nil {
				t.Fatalf("series8.Open: %v", err)
			}
			st, err := c.PINStatus(context.Background())
			if err != nil {
				t.Fatalf("PINStatus: %v", err)
			}
			return st.Retries
		}
		vc.ClearLog()
		out, err := o.p11(t, "--login", "--pin", "654321", "--list-objects")
		if err == nil || !strings.Contains(out, "CKR_PIN_INCORRECT") {
			t.Errorf("pkcs11-tool --login with a wrong PIN: %v, want CKR_PIN_INCORRECT:\n%s", err, out)
		}
		if n := countVerifies(vc.APDUs(), 0x81); n != 1 {
			t.Errorf("a wrong PIN was sent %d times, want once", n)
		}
		t.Logf("pkcs11-tool wrong PIN: %d APDUs", vc.APDUCount())
		if got := vc.PINTries(); got != 2 {
			t.Errorf("card tries %d after one wrong PIN, want 2", got)
		}
		if got := driverTries(); got != 2 {
			t.Errorf("the native driver reads %d tries after one wrong PIN, want 2", got)
		}
		vc.ClearLog()
		out = mustP11(t, o, "--login", "--pin", vseries8.DefaultPIN, "--list-objects")
		if !strings.Contains(out, "Private Key Object") {
			t.Errorf("pkcs11-tool --login --list-objects shows no private key:\n%s", out)
		}
		t.Logf("pkcs11-tool right PIN: %d APDUs", vc.APDUCount())
		if got := vc.PINTries(); got != 3 {
			t.Errorf("card tries %d after the right PIN, want 3", got)
		}
		vc.Reset() // OpenSC leaves the card as it is at exit (SCARD_LEAVE_CARD)
		if got := driverTries(); got != 3 {
			t.Errorf("the native driver reads %d tries after the right PIN, want 3", got)
		}
	})

	t.Run("decipher", func(t *testing.T) {
		// OpenSC deciphers with the authentication key through PKCS#11:
		// MSE 00 22 41 B8, PSO DECIPHER 00 2A 80 86 with the first 8 bytes
		// of the 256-byte cryptogram chained under CLA 10.
		dir := t.TempDir()
		in, out := filepath.Join(dir, "cryptogram"), filepath.Join(dir, "plain")
		secret := []byte("session key for OpenSC")
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, creds.AuthCert.PublicKey.(*rsa.PublicKey), secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in, ct, 0o600); err != nil {
			t.Fatal(err)
		}
		vc.ClearLog()
		mustP11(t, o, "--login", "--pin", vseries8.DefaultPIN, "--decrypt", "-m", "RSA-PKCS", "--id", keyID(creds.AuthCert.PublicKey), "-i", in, "-o", out)
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("OpenSC deciphered %q (%v), want %q", got, err, secret)
		}
		chained := false
		for _, a := range vc.APDUs() {
			chained = chained || bytes.HasPrefix(a, []byte{0x10, 0x2A, 0x80, 0x86, 0x08})
		}
		if !chained {
			t.Error("OpenSC did not send the chained PSO DECIPHER")
		}
		vc.Reset()
	})

	t.Run("sign", func(t *testing.T) {
		for _, k := range []struct {
			name string
			fid  string
			cert *rsa.PublicKey
		}{
			{"authentication", "30 01", creds.AuthCert.PublicKey.(*rsa.PublicKey)},
			{"signature", "30 02", creds.SignCert.PublicKey.(*rsa.PublicKey)},
		} {
			digest := sha256.Sum256([]byte("OpenSC signs " + k.name))
			di := append(bytes.Clone(sha256DigestInfo), digest[:]...)
			before := vc.Signatures()
			out := o.mustRun(t, "opensc-tool", append([]string{"-r", o.reader, "-c", "oberthur"}, openSCSignSequence(k.fid, vseries8.DefaultPIN, di)...)...)
			sig := lastResponse(t, out)
			if err := rsa.VerifyPKCS1v15(k.cert, crypto.SHA256, digest[:], sig); err != nil {
				t.Errorf("%s: the signature made with OpenSC's APDUs does not verify with the certificate: %v\n%s", k.name, err, out)
			}
			if vc.Signatures() != before+1 || vc.Verified() {
				t.Errorf("%s: %d signatures, PIN verified %v after logout", k.name, vc.Signatures()-before, vc.Verified())
			}
		}
	})
}

func mustP11(t *testing.T, o *openSCCard, args ...string) string {
	t.Helper()
	out, err := o.p11(t, args...)
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// countVerifies counts VERIFY commands with data (PIN submissions) for ref.
func countVerifies(apdus [][]byte, ref byte) int {
	n := 0
	for _, a := range apdus {
		if len(a) > 5 && a[1] == 0x20 && a[3] == ref {
			n++
		}
	}
	return n
}

var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// openSCSignSequence is the APDU sequence OpenSC's oberthur driver sends to
// sign with the private key file 3F00/5011/9002/<fid> (card-oberthur.c:
// auth_select_file one FID at a time, auth_pin_verify, auth_set_security_env,
// auth_compute_signature, auth_logout), as opensc-tool -s arguments. OpenSC
// 0.23 cannot be asked to send it through PKCS#11 or pkcs15-crypt: its
// oberthur driver refuses every PKCS#1 signature request before any APDU
// (see docs/series8.md).
func openSCSignSequence(fid, pin string, digestInfo []byte) []string {
	hx := func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }
	padded := bytes.Repeat([]byte{0xFF}, 64)
	copy(padded, pin)
	cmds := []string{
		"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
		"00 A4 00 00 02 3F 00 00",
		"00 A4 00 00 02 50 11 00",
		"00 20 00 81",
		"00 20 00 81 40 " + hx(padded),
		"00 A4 00 00 02 90 02 00",
		"00 A4 00 00 02 " + fid + " 00",
		"00 22 41 B6 03 80 01 11",
		fmt.Sprintf("00 2A 9E 9A %02X %s 00", len(digestInfo), hx(digestInfo)),
		"80 2E 00 21",
		"80 2E 00 22",
	}
	var args []string
	for _, c := range cmds {
		args = append(args, "-s", c)
	}
	return args
}

// hexLine is a line of opensc-tool's response dump: up to 16 bytes in hex
// in the first 48 columns, then their ASCII.
var hexLine = regexp.MustCompile(`^(?:[0-9A-F]{2} ){1,16} *$`)

// lastResponse returns the data of the response to the last command in
// opensc-tool -s output that had data (the signature).
func lastResponse(t *testing.T, out string) []byte {
	t.Helper()
	var last, cur []byte
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Sending:"):
			if len(cur) > 0 {
				last = cur
			}
			cur = nil
		case strings.HasPrefix(line, "Received"):
		default:
			if len(line) > 48 {
				line = line[:48]
			}
			if hexLine.MatchString(line) {
				b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
				if err != nil {
					t.Fatalf("opensc-tool output %q: %v", line, err)
				}
				cur = append(cur, b...)
			}
		}
	}
	if len(cur) > 0 {
		last = cur
	}
	if last == nil {
		t.Fatalf("no response data in opensc-tool output:\n%s", out)
	}
	return last
}

// apduForm is a command's form for comparing drivers: CLA INS P1 P2 and the
// data's length, with what legitimately varies between two runs abstracted
// (READ BINARY offsets, READ RECORD numbers, the DigestInfo signed) and the
// AID or file identifier of a SELECT kept. Le is left out: on a T=0 card
// OpenSC sends case 4 commands without it (the answer comes by GET
// RESPONSE), and an empty VERIFY with P3=00.
func apduForm(a []byte) string {
	if len(a) < 4 {
		return fmt.Sprintf("% X", a)
	}
	cla, ins, p1, p2 := a[0], a[1], a[2], a[3]
	var data []byte
	if rest := a[4:]; len(rest) > 1 && rest[0] > 0 && len(rest) >= 1+int(rest[0]) {
		data = rest[1 : 1+int(rest[0])]
	}
	hdr := fmt.Sprintf("%02X %02X %02X %02X", cla, ins, p1, p2)
	switch ins {
	case 0xB0:
		hdr = fmt.Sprintf("%02X B0 <offset>", cla)
	case 0xB2:
		hdr = fmt.Sprintf("%02X B2 <record> %02X", cla, p2)
	}
	switch {
	case data == nil:
		return hdr
	case ins == 0xA4:
		return fmt.Sprintf("%s % X", hdr, data)
	case ins == 0x2A && p1 == 0x9E:
		return hdr + " <DigestInfo>"
	}
	return fmt.Sprintf("%s Lc=%02X", hdr, len(data))
}

// notOpenSC lists the command forms the native driver sends that OpenSC's
// oberthur driver never does, each with the reason (docs/series8.md).
var notOpenSC = map[string]string{
	// OpenSC's auth_logout sends 80 2E 00 21 and 22 only and never ends the
	// SO PIN's state after an unblock; the driver does, so the unblock code
	// in file 2000 does not stay readable for other programs.
	"80 2E 00 24": "SO PIN logout after unblocking",
}

// step is one measured operation.
type step struct {
	name  string
	apdus [][]byte
	took  time.Duration
}

// TestDriverSendsOpenSCForms records OpenSC's and the native driver's
// transcripts for the same operations against the virtual card (open, read
// certificates, PIN status, verify and sign, change PIN, unblock) and fails
// if the driver sends a command form OpenSC does not. It logs the APDU
// counts and times of both.
func TestDriverSendsOpenSCForms(t *testing.T) {
	o := newOpenSCCard(t)
	vc, creds := o.vc, o.creds
	const newPIN, newPIN2 = "24681357", "13572468"

	var openSC []step
	record := func(name string, fn func()) {
		t.Helper()
		vc.ClearLog()
		start := time.Now()
		fn()
		openSC = append(openSC, step{name, vc.APDUs(), time.Since(start)})
	}
	record("open", func() { o.mustRun(t, "opensc-tool", "-r", o.reader, "-c", "oberthur", "-n") })
	record("read certificates", func() { o.mustRun(t, "pkcs15-tool", "-r", o.reader, "--list-certificates") })
	record("PIN status", func() { o.mustRun(t, "pkcs15-tool", "-r", o.reader, "--list-pins") })
	record("verify (PKCS#11 login)", func() { mustP11(t, o, "--login", "--pin", vseries8.DefaultPIN, "--list-objects") })
	vc.Reset()
	digest := sha256.Sum256([]byte("forms"))
	record("verify+sign (opensc-tool -s)", func() {
		o.mustRun(t, "opensc-tool", append([]string{"-r", o.reader, "-c", "oberthur"},
			openSCSignSequence("30 01", vseries8.DefaultPIN, append(bytes.Clone(sha256DigestInfo), digest[:]...))...)...)
	})
	record("change PIN", func() {
		o.mustRun(t, "pkcs15-tool", "-r", o.reader, "--change-pin", "--auth-id", "53434D", "--pin", vseries8.DefaultPIN, "--new-pin", newPIN)
	})
	if vc.PINTries() != 3 {
		t.Fatalf("OpenSC's change PIN left %d tries", vc.PINTries())
	}
	vc.Reset()
	// OpenSC 0.23's pkcs15-tool verifies the PUK as the SO PIN 84, then
	// stops with "Invalid arguments" before RESET RETRY COUNTER
	// (docs/series8.md); the rest of its driver's sequence is sent with
	// opensc-tool.
	record("unblock: PUK (pkcs15-tool)", func() {
		out, err := o.run(t, "pkcs15-tool", "-r", o.reader, "--unblock-pin", "--auth-id", "53434D", "--puk", vseries8.DefaultPUK, "--new-pin", newPIN2)
		if err == nil {
			t.Logf("pkcs15-tool --unblock-pin succeeded: %s", out)
		}
	})
	vc.SetPINTries(1)
	vc.Reset()
	record("unblock (opensc-tool -s)", func() {
		o.mustRun(t, "opensc-tool", append([]string{"-r", o.reader, "-c", "oberthur"},
			openSCUnblockSequence(vseries8.DefaultPUK, vc.UnblockCode(), newPIN2)...)...)
	})
	if vc.PINTries() != 3 {
		t.Errorf("OpenSC's unblock sequence left %d PIN tries, want 3", vc.PINTries())
	}
	vc.Reset()

	// The native driver, same operations, through the same pcscd.
	log := zaptest.NewLogger(t)
	s := openConn(t, o.reader, log)
	ctx := context.Background()
	var ours []step
	do := func(name string, fn func() error) {
		t.Helper()
		vc.ClearLog()
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("driver %s: %v", name, err)
		}
		ours = append(ours, step{name, vc.APDUs(), time.Since(start)})
	}
	var c *series8.Card
	do("open", func() (err error) { c, err = series8.Open(ctx, s, log); return err })
	do("read certificates", func() error {
		certs, err := c.Certificates(ctx)
		if err == nil && len(certs) != 2 {
			err = fmt.Errorf("%d certificates", len(certs))
		}
		return err
	})
	do("PIN status", func() error { _, err := c.PINStatus(ctx); return err })
	do("verify+sign", func() error {
		k, err := c.PrivateKey(pcsc.KeyAuthentication, pinFunc(newPIN2))
		if err != nil {
			return err
		}
		sig, err := k.Sign(nil, digest[:], crypto.SHA256)
		if err == nil {
			err = rsa.VerifyPKCS1v15(creds.AuthCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig)
		}
		return err
	})
	do("change PIN", func() error { return c.ChangePIN(ctx, []byte(newPIN2), []byte(newPIN)) })
	vc.SetPINTries(0)
	do("unblock", func() error { return c.UnblockPIN(ctx, []byte(vseries8.DefaultPUK), []byte(newPIN2)) })
	if vc.PINTries() != 3 || vc.SOVerified() || vc.Verified() {
		t.Errorf("after the driver's unblock: %d tries, SO PIN verified %v, PIN verified %v", vc.PINTries(), vc.SOVerified(), vc.Verified())
	}

	known := map[string]bool{}
	for _, st := range openSC {
		for _, a := range st.apdus {
			known[apduForm(a)] = true
		}
	}
	for _, st := range ours {
		for _, a := range st.apdus {
			f := apduForm(a)
			if !known[f] && notOpenSC[f] == "" {
				t.Errorf("driver %s sends %q (% X), a form OpenSC's oberthur driver does not send", st.name, f, a)
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-32s %6s %10s\n", "operation", "APDUs", "time")
	for _, st := range openSC {
		fmt.Fprintf(&sb, "OpenSC %-25s %6d %10v\n", st.name, len(st.apdus), st.took.Round(time.Millisecond))
	}
	for _, st := range ours {
		fmt.Fprintf(&sb, "driver %-25s %6d %10v\n", st.name, len(st.apdus), st.took.Round(10*time.Microsecond))
	}
	t.Logf("APDU counts and times (OpenSC: whole tool process, start-up and binding included):\n%s", sb.String())
}

// openSCUnblockSequence is what OpenSC's oberthur driver sends to unblock
// the user PIN (card-oberthur.c, auth_pin_reset_oberthur_style): VERIFY the
// SO PIN 84 with the PUK, SELECT 2000, READ BINARY 16 bytes, RESET RETRY
// COUNTER 00 2C 00 01 with that code and the new PIN, both padded with FF.
func openSCUnblockSequence(puk string, code []byte, newPIN string) []string {
	hx := func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }
	pad := func(s string) []byte {
		b := bytes.Repeat([]byte{0xFF}, 64)
		copy(b, s)
		return b
	}
	cmds := []string{
		"00 A4 04 0C 10 A0 00 00 00 77 01 03 03 00 00 00 F1 00 00 00 02",
		"00 A4 00 00 02 3F 00 00",
		"00 A4 00 00 02 50 11 00",
		"00 20 00 84",
		"00 20 00 84 40 " + hx(pad(puk)),
		"00 A4 00 00 02 20 00 00",
		"00 B0 00 00 10",
		"00 2C 00 01 50 " + hx(code) + hx(pad(newPIN)),
	}
	var args []string
	for _, c := range cmds {
		args = append(args, "-s", c)
	}
	return args
}
