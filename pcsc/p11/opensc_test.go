//go:build cgo && linux

package p11

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// OpenSCModule is where Debian's opensc-pkcs11 installs OpenSC's PKCS#11 module.
const OpenSCModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

// openSCConf makes OpenSC deterministic and safe for the agent: only its PIV
// driver, no file cache, no PIN cache (the agent must not rely on OpenSC
// remembering a PIN), CKA_ALWAYS_AUTHENTICATE honoured. OpenSC's PIV driver
// has no card logout (piv_logout returns SC_ERROR_NOT_SUPPORTED and C_Logout
// ignores that), so the card would stay PIN-verified after C_Logout; with
// lock_login one PC/SC transaction spans C_Login..C_Logout, and
// transaction_end_action = reset resets the card when it ends.
const openSCConf = `app default {
	debug = 0;
	card_drivers = PIV-II;
	enable_default_driver = false;
	disable_popups = true;
	reader_driver pcsc {
		transaction_end_action = reset;
	}
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

// openSCCard is a virtual NHS PIV card in the private pcscd, opened through OpenSC.
type openSCCard struct {
	vcard *vpiv.Card
	slot  *vcard.Slot
	card  *Card
	info  pcsc.CardInfo
	// pull, when set, pulls the card as the next GENERAL AUTHENTICATE (the
	// signature) reaches it.
	pull atomic.Bool
}

func requireOpenSC(t testing.TB) *pcsctest.PCSCD {
	t.Helper()
	if _, err := os.Stat(OpenSCModule); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenSC test cannot run in CI: %v", err)
		}
		t.Skipf("OpenSC PKCS#11 module not installed: %v", err)
	}
	p := pcsctest.Require(t)
	if n := modules.users(OpenSCModule); n != 0 {
		t.Fatalf("OpenSC module still has %d users from an earlier test", n)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "opensc.conf")
	if err := os.WriteFile(conf, []byte(openSCConf), 0o600); err != nil {
		t.Fatal(err)
	}
	setenv(t, "OPENSC_CONF", conf)
	return p
}

// newOpenSCCard inserts a fresh NHS PIV card (RSA-2048 or P-256 keys) into
// vpcd slot 0 and opens it through OpenSC's module, as the agent would after
// PC/SC identified it.
func newOpenSCCard(t testing.TB, kt testpki.KeyType, log *zap.Logger) *openSCCard {
	t.Helper()
	p := requireOpenSC(t)
	pki := testCreds(t).pki
	vc, err := vpiv.NewNHS(pki, testpki.CardSpec{KeyType: kt, DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	o := &openSCCard{vcard: vc}
	o.slot = p.Insert(t, 0, vc, vcard.Options{BeforeAPDU: func(cmd []byte) vcard.Fault {
		if len(cmd) > 1 && cmd[1] == 0x87 && o.pull.Load() {
			return vcard.Drop
		}
		return vcard.Pass
	}})
	o.info = pcsc.CardInfo{Kind: pcsc.KindPIV, Reader: pcsctest.ReaderNames[0], ATR: vc.ATR()}
	o.card = openOpenSC(t, o.info, log)
	return o
}

// openOpenSC opens the card in info.Reader through OpenSC, waiting for pcscd
// to see a card just inserted (about 130 ms).
func openOpenSC(t testing.TB, info pcsc.CardInfo, log *zap.Logger) *Card {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		c   *Card
		err error
	)
	for {
		c, err = Open(ctx, Config{Module: OpenSCModule}, info, log)
		if err == nil || !errors.Is(err, pcsc.ErrNoCard) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Open through OpenSC: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenSCPIV(t *testing.T) {
	for _, kt := range []testpki.KeyType{testpki.RSA2048, testpki.P256} {
		t.Run(string(kt), func(t *testing.T) {
			o := newOpenSCCard(t, kt, testLogger(t))
			c, vc := o.card, o.vcard
			t.Logf("OpenSC open: %d APDUs, INS % X", vc.APDUCount(), vc.INSLog())
			certs, err := c.Certificates(t.Context())
			if err != nil {
				t.Fatalf("Certificates: %v", err)
			}
			got := map[pcsc.KeyRef]pcsc.Certificate{}
			for _, cert := range certs {
				got[cert.Key] = cert
				t.Logf("key %s: %q %s", cert.Key, cert.Label, cert.Cert.Subject)
			}
			for ref, slot := range map[pcsc.KeyRef]byte{pcsc.KeyAuthentication: vpiv.SlotAuthentication, pcsc.KeySignature: vpiv.SlotSignature} {
				if g := got[ref]; g.Cert == nil || !g.Cert.Equal(vc.Certificate(slot)) {
					t.Errorf("key %s: certificate %v, want the card's slot %X certificate", ref, g.Cert, slot)
				}
			}
			info := c.Info()
			if info.Driver != "pkcs11" || info.Reader != pcsctest.ReaderNames[0] || info.Kind != pcsc.KindPIV || info.ID == "" {
				t.Errorf("Info = %+v", info)
			}
			opts := []crypto.SignerOpts{crypto.SHA256, crypto.SHA384}
			if kt == testpki.RSA2048 {
				opts = append(opts, crypto.SHA512, &rsaPSS256)
			}
			for _, ref := range []pcsc.KeyRef{pcsc.KeyAuthentication, pcsc.KeySignature} {
				for _, o := range opts {
					t.Run(fmt.Sprintf("%s-%v-%T", ref, o.HashFunc(), o), func(t *testing.T) {
						tries := vc.PINTries()
						vc.ClearLog()
						sig, digest := signDigest(t, mustSigner(t, c, ref, staticPIN(vpiv.DefaultPIN)), o)
						t.Logf("one signature: INS % X", vc.INSLog())
						verifySig(t, c, ref, o, digest, sig)
						if vc.Verified() {
							t.Error("the card's PIN is still verified after Sign: OpenSC's C_Logout did not reset it")
						}
						if got := vc.PINTries(); got != tries {
							t.Errorf("PIN tries %d after a correct PIN, were %d", got, tries)
						}
					})
				}
			}
		})
	}
}

// TestOpenSCWrongPIN: through OpenSC, a wrong PIN costs exactly one try on
// the card, and the token flags give the tries left where they can.
func TestOpenSCWrongPIN(t *testing.T) {
	o := newOpenSCCard(t, testpki.RSA2048, testLogger(t))
	c, vc := o.card, o.vcard
	wrong := staticPIN("654321")
	for i := 1; i <= 3; i++ {
		_, err := mustSigner(t, c, pcsc.KeyAuthentication, wrong).Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
		var ae *pcsc.AuthError
		switch {
		case i < 3 && !errors.As(err, &ae):
			t.Fatalf("wrong PIN %d: %v, want *AuthError", i, err)
		case i == 3 && !errors.Is(err, pcsc.ErrPINBlocked):
			t.Errorf("wrong PIN %d (the last try): %v, want a blocked PIN", i, err)
		}
		if got := vc.PINTries(); got != 3-i {
			t.Fatalf("after wrong PIN %d the card has %d tries, want %d", i, got, 3-i)
		}
		st, err := c.PINStatus(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after wrong PIN %d: error %v; PINStatus %+v", i, ae, st)
		if want := map[int]int{1: -1, 2: 1, 3: 0}[i]; st.Retries != want || st.Blocked != (i == 3) {
			t.Errorf("PINStatus after wrong PIN %d: %+v, want Retries %d", i, st, want)
		}
	}
	_, err := mustSigner(t, c, pcsc.KeyAuthentication, staticPIN(vpiv.DefaultPIN)).Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	if !errors.Is(err, pcsc.ErrPINBlocked) {
		t.Errorf("the correct PIN on a blocked card: %v, want ErrPINBlocked", err)
	}
	if vc.PINTries() != 0 {
		t.Errorf("card tries %d, want 0", vc.PINTries())
	}
}

// TestConformanceOpenSC runs the shared suite's signing cases through
// OpenSC's PKCS#11 module against a fresh virtual NHS PIV card per case,
// through the private pcscd.
func TestConformanceOpenSC(t *testing.T) {
	requireOpenSC(t)
	algs := append(cardtest.RSAAlgorithms(), cardtest.RSAPKCS1SHA1, cardtest.RSAPSSSHA256Auto)
	algs = append(algs, cardtest.OnKey(pcsc.KeySignature, cardtest.RSAPKCS1SHA256, cardtest.RSAPSSSHA256)...)
	cardtest.Run(t, cardtest.Fixture{
		Name:       "opensc-piv-rsa2048",
		SignOnly:   true,
		Algorithms: algs,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			o := newOpenSCCard(t, testpki.RSA2048, log)
			return &cardtest.Env{
				Card:       o.card,
				PIN:        []byte(vpiv.DefaultPIN),
				PUK:        []byte(vpiv.DefaultPUK),
				PINTries:   o.vcard.PINTries,
				PUKTries:   o.vcard.PUKTries,
				PullOnSign: func() { o.pull.Store(true) },
				Writes:     o.vcard.WriteCount,
				APDUs:      o.vcard.APDUCount,
				Reopen:     func(t *testing.T) pcsc.Card { return openOpenSC(t, o.info, log) },
			}
		},
	})
}

// TestOpenSCCardPulled: the card leaves during the signature. The error is
// typed, the PIN was asked once and is not retried, and after the agent closes
// the Card (the module is finalised) a reinserted card opens again.
func TestOpenSCCardPulled(t *testing.T) {
	o := newOpenSCCard(t, testpki.RSA2048, testLogger(t))
	c, vc := o.card, o.vcard
	if _, err := c.Certificates(t.Context()); err != nil {
		t.Fatal(err)
	}
	o.pull.Store(true)
	pinCalls := 0
	k := mustSigner(t, c, pcsc.KeyAuthentication, func() ([]byte, error) { pinCalls++; return []byte(vpiv.DefaultPIN), nil })
	start := time.Now()
	_, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	t.Logf("Sign with the card pulled: %v after %v", err, time.Since(start))
	if !errors.Is(err, pcsc.ErrCardRemoved) && !errors.Is(err, pcsc.ErrCardUnresponsive) {
		t.Errorf("Sign with the card pulled: %v, want ErrCardRemoved or ErrCardUnresponsive", err)
	}
	if pinCalls != 1 || vc.PINTries() != vpiv.DefaultRetries {
		t.Errorf("PINFunc called %d times, card tries %d: want 1 and %d", pinCalls, vc.PINTries(), vpiv.DefaultRetries)
	}
	if _, err := c.PINStatus(t.Context()); err == nil {
		t.Error("PINStatus after the card was pulled succeeded")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Reinsert the card: a new Open works (the module was finalised and is
	// initialised again). Debian's vpcd wedges slot 0 when a card that vanished
	// mid-APDU is reset (OpenSC's transaction_end_action = reset does that):
	// pcscd never sees a card there again, so restart the private pcscd first,
	// which also leaves a working harness for later tests.
	o.pull.Store(false)
	p := pcsctest.Require(t)
	if err := p.Restart(); err != nil {
		t.Fatalf("restarting pcscd: %v", err)
	}
	p.Insert(t, 0, vc, vcard.Options{})
	c2 := openOpenSC(t, o.info, testLogger(t))
	sig, digest := signDigest(t, mustSigner(t, c2, pcsc.KeyAuthentication, staticPIN(vpiv.DefaultPIN)), crypto.SHA256)
	verifySig(t, c2, pcsc.KeyAuthentication, crypto.SHA256, digest, sig)
}

// TestOpenSCChangeAndUnblock: ChangePIN (C_Login, then C_SetPIN: VERIFY and
// CHANGE REFERENCE DATA) works through OpenSC and a wrong old PIN costs
// exactly one try; UnblockPIN is refused as unsupported without spending a
// PUK try.
func TestOpenSCChangeAndUnblock(t *testing.T) {
	o := newOpenSCCard(t, testpki.P256, testLogger(t))
	c, vc := o.card, o.vcard
	ctx := t.Context()
	var ae *pcsc.AuthError
	vc.ClearLog()
	if err := c.ChangePIN(ctx, []byte("654321"), []byte("24681357")); !errors.As(err, &ae) || vc.PINTries() != 2 {
		t.Fatalf("ChangePIN with a wrong old PIN: %v; card tries %d, want *AuthError and 2", err, vc.PINTries())
	}
	if err := c.ChangePIN(ctx, []byte(vpiv.DefaultPIN), []byte("24681357")); err != nil {
		t.Fatalf("ChangePIN: %v", err)
	}
	t.Logf("ChangePIN x2: INS % X", vc.INSLog())
	if vc.PIN() != "24681357" || vc.PINTries() != 3 {
		t.Errorf("card PIN %q, tries %d after ChangePIN", vc.PIN(), vc.PINTries())
	}
	for range 3 {
		mustSigner(t, c, pcsc.KeyAuthentication, staticPIN("111111")).Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	}
	if vc.PINTries() != 0 {
		t.Fatalf("card tries %d, want blocked", vc.PINTries())
	}
	// OpenSC turns the SO login into VERIFY of key 81 (the PUK), which PIV
	// does not allow (SP 800-73-4: the PUK only serves RESET RETRY COUNTER):
	// the card answers 6A88, no PUK try is spent, and the agent is told the
	// module cannot unblock.
	vc.ClearLog()
	err := c.UnblockPIN(ctx, []byte(vpiv.DefaultPUK), []byte("13572468"))
	t.Logf("UnblockPIN: %v; INS % X", err, vc.INSLog())
	if !errors.Is(err, ErrUnblockNotSupported) {
		t.Errorf("UnblockPIN through OpenSC: %v, want ErrUnblockNotSupported", err)
	}
	if vc.PUKTries() != vpiv.DefaultRetries || vc.PINTries() != 0 {
		t.Errorf("card PUK tries %d, PIN tries %d after UnblockPIN: want %d and still blocked", vc.PUKTries(), vc.PINTries(), vpiv.DefaultRetries)
	}
}
