//go:build cgo && linux

package p11

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// openSCSeries8Conf is openSCConf with OpenSC's oberthur driver (whose ATR
// table holds the virtual series 8 card's ATR) instead of its PIV driver,
// and without transaction_end_action = reset: the oberthur driver sends its
// start-up commands in separate transactions, so a reset after each one
// deselects the applet it has just selected and the card cannot be opened
// (a real card would do the same). It needs no reset: its C_Logout sends
// 80 2E 00 21 and 22, which end the PIN's verified state.
const openSCSeries8Conf = `app default {
	debug = 0;
	card_drivers = oberthur;
	enable_default_driver = false;
	disable_popups = true;
	framework pkcs15 {
		use_file_caching = no;
		use_pin_caching = false;
		pin_cache_ignore_user_consent = false;
	}
	pkcs11 {
		lock_login = true;
	}
}
`

// TestOpenSCSeries8 runs the project's PKCS#11 path through OpenSC's module
// (its oberthur driver and AWP emulator) over the virtual series 8 card:
// identity, certificates byte for byte, PIN status, a wrong PIN costing
// exactly one try, change PIN. Signing and unblocking are checked to fail
// the way Debian's OpenSC 0.23 fails on every Oberthur card, without
// sending a signature command or spending a try (docs/series8.md).
func TestOpenSCSeries8(t *testing.T) {
	requireOpenSC(t)
	conf := filepath.Join(t.TempDir(), "opensc-series8.conf")
	if err := os.WriteFile(conf, []byte(openSCSeries8Conf), 0o600); err != nil {
		t.Fatal(err)
	}
	setenv(t, "OPENSC_CONF", conf)
	p := pcsctest.Require(t)
	creds, err := testCreds(t).pki.IssueCard(testpki.CardSpec{KeyType: testpki.RSA2048, DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := vseries8.NHSConfig(creds)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vseries8.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 0, vc, vcard.Options{})
	info := pcsc.CardInfo{Kind: pcsc.KindSeries8, Reader: pcsctest.ReaderNames[0], ATR: vc.ATR()}
	c := openOpenSC(t, info, testLogger(t))
	ctx := context.Background()

	if got := c.Info(); got.Driver != "pkcs11" || got.ID == "" || got.Kind != pcsc.KindSeries8 {
		t.Errorf("Info = %+v", got)
	}
	certs, err := c.Certificates(ctx)
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	got := map[pcsc.KeyRef][]byte{}
	for _, cert := range certs {
		got[cert.Key] = cert.Cert.Raw
		t.Logf("key %s: %q %s", cert.Key, cert.Label, cert.Cert.Subject)
	}
	if string(got[pcsc.KeyAuthentication]) != string(creds.AuthCert.Raw) || string(got[pcsc.KeySignature]) != string(creds.SignCert.Raw) {
		t.Errorf("certificates through OpenSC's module are not the card's authentication and signing certificates: %d found", len(certs))
	}
	st, err := c.PINStatus(ctx)
	if err != nil || st.Blocked || st.Retries == 0 {
		t.Errorf("PINStatus = %+v, %v; want a usable PIN", st, err)
	}

	// A wrong old PIN costs exactly one try; the right one changes the PIN.
	var ae *pcsc.AuthError
	vc.ClearLog()
	if err := c.ChangePIN(ctx, []byte("654321"), []byte("24681357")); !errors.As(err, &ae) {
		t.Errorf("ChangePIN with a wrong old PIN: %v, want *AuthError", err)
	}
	if n := vc.PINTries(); n != 2 {
		t.Errorf("card tries %d after one wrong PIN through OpenSC, want 2", n)
	}
	if err := c.ChangePIN(ctx, []byte(vseries8.DefaultPIN), []byte("24681357")); err != nil {
		t.Fatalf("ChangePIN through OpenSC: %v", err)
	}
	if err := c.ChangePIN(ctx, []byte("24681357"), []byte(vseries8.DefaultPIN)); err != nil {
		t.Fatalf("ChangePIN back through OpenSC (the first change did not take): %v", err)
	}
	if n, w := vc.PINTries(), vc.WriteCount(); n != 3 || w != 2 {
		t.Errorf("after two changes: %d tries, %d writes; want 3 and 2", n, w)
	}
	t.Logf("change PIN x3 through OpenSC: INS % X", vc.INSLog())

	// OpenSC 0.23's oberthur driver refuses every PKCS#1 signature before
	// sending a signature command: the PIN is right, so no try is lost.
	vc.ClearLog()
	k, err := c.PrivateKey(pcsc.KeyAuthentication, staticPIN(vseries8.DefaultPIN))
	if err != nil {
		t.Fatalf("PrivateKey: %v", err)
	}
	sig, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	t.Logf("Sign through OpenSC: %v; INS % X", err, vc.INSLog())
	if err == nil {
		t.Logf("OpenSC signed (%d bytes): its oberthur driver no longer refuses PKCS#1; docs/series8.md needs updating", len(sig))
	}
	for _, ins := range vc.INSLog() {
		if ins == 0x2A && err != nil {
			t.Errorf("OpenSC sent PSO although signing failed")
		}
	}
	if n := vc.PINTries(); n != 3 {
		t.Errorf("card tries %d after a refused signature, want 3", n)
	}

	// Unblock: OpenSC 0.23 verifies the PUK as the SO PIN 84 and then fails
	// before RESET RETRY COUNTER; nothing is written and no try is spent.
	vc.SetPINTries(1)
	vc.ClearLog()
	err = c.UnblockPIN(ctx, []byte(vseries8.DefaultPUK), []byte("13572468"))
	t.Logf("UnblockPIN through OpenSC: %v; INS % X; SO PIN left verified: %v", err, vc.INSLog(), vc.SOVerified())
	if err == nil {
		t.Logf("OpenSC unblocked the PIN: docs/series8.md needs updating")
	} else if n, w, pk := vc.PINTries(), vc.WriteCount(), vc.PUKTries(); n != 1 || w != 2 || pk != 10 {
		t.Errorf("after a failed unblock: PIN tries %d, writes %d, PUK tries %d; want 1, 2, 10", n, w, pk)
	}
}
