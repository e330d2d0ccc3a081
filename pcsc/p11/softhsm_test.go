//go:build cgo

package p11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// SoftHSMModule is where Debian's softhsm2 installs its PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

const (
	hsmPIN   = "123456"
	hsmSOPIN = "12345678" // used as the "PUK" by UnblockPIN
	hsmLabel = "NHS TEST SOFTHSM"
)

// hsmCreds are the card credentials loaded into every SoftHSM token: an
// RSA-2048 authentication key and certificate, and an ECDSA P-256 signing key
// and certificate, from the NHS-shaped test PKI. Made once per test binary.
type hsmCreds struct {
	pki  *testpki.PKI
	auth *testpki.CardCreds // RSA: AuthCert/AuthKey are used
	sign *testpki.CardCreds // P-256: SignCert/SignKey are used
}

var (
	credsOnce sync.Once
	creds     hsmCreds
	credsErr  error
)

func testCreds(t testing.TB) hsmCreds {
	t.Helper()
	credsOnce.Do(func() {
		creds.pki, credsErr = testpki.New()
		if credsErr != nil {
			return
		}
		if creds.auth, credsErr = creds.pki.IssueCard(testpki.CardSpec{KeyType: testpki.RSA2048, DaysLeft: 400}); credsErr != nil {
			return
		}
		creds.sign, credsErr = creds.pki.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400})
	})
	if credsErr != nil {
		t.Fatalf("test PKI: %v", credsErr)
	}
	return creds
}

// hsmToken is a throwaway SoftHSM2 token for one test.
type hsmToken struct {
	Module   string
	AuthCert *x509.Certificate // RSA-2048, CKA_ID 01
	SignCert *x509.Certificate // P-256, CKA_ID 02, key with CKA_ALWAYS_AUTHENTICATE
}

// requireSoftHSM skips without SoftHSM2 (fails under CI=true).
func requireSoftHSM(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := os.Stat(SoftHSMModule); err != nil {
		why = "SoftHSM2 module not installed"
	} else if _, err := exec.LookPath("softhsm2-util"); err != nil {
		why = "softhsm2-util not installed"
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SoftHSM test cannot run in CI: %s", why)
		}
		t.Skip(why)
	}
}

// newSoftHSM makes a SOFTHSM2_CONF and token directory under t.TempDir(),
// initialises a token with softhsm2-util and imports the test keys and
// certificates (plus the authentication CA certificate, which has no key)
// through PKCS#11. The module must not be in use by another Card: SoftHSM
// reads SOFTHSM2_CONF at C_Initialize.
func newSoftHSM(t testing.TB) hsmToken {
	t.Helper()
	return newSoftHSMWith(t)
}

// newSoftHSMWith is newSoftHSM with extra empty tokens labelled others.
func newSoftHSMWith(t testing.TB, others ...string) hsmToken {
	t.Helper()
	requireSoftHSM(t)
	if n := modules.users(SoftHSMModule); n != 0 {
		t.Fatalf("SoftHSM module still has %d users from an earlier test", n)
	}
	cr := testCreds(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	setenv(t, "SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", hsmLabel,
		"--pin", hsmPIN, "--so-pin", hsmSOPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	for _, label := range others {
		out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
			"--pin", hsmPIN, "--so-pin", hsmSOPIN).CombinedOutput()
		if err != nil {
			t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
		}
	}

	m, err := modules.acquire(SoftHSMModule)
	if err != nil {
		t.Fatalf("loading SoftHSM: %v", err)
	}
	defer modules.release(m)
	l, ok := m.lib.(*pkcs11.Ctx)
	if !ok {
		t.Fatalf("module is a %T, not a loaded library", m.lib)
	}
	slots, err := l.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var slot uint
	found := false
	for _, s := range slots {
		ti, err := l.GetTokenInfo(s)
		if err == nil && ti.Label == hsmLabel {
			slot, found = s, true
		}
	}
	if !found {
		t.Fatalf("initialised token not found among slots %v", slots)
	}
	sh, err := l.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer l.CloseSession(sh)
	if err := l.Login(sh, pkcs11.CKU_USER, hsmPIN); err != nil {
		t.Fatal(err)
	}
	defer l.Logout(sh)
	create := func(what string, attrs []*pkcs11.Attribute) {
		t.Helper()
		if _, err := l.CreateObject(sh, attrs); err != nil {
			t.Fatalf("importing %s: %v", what, err)
		}
	}
	rsaKey := cr.auth.AuthKey.(*rsa.PrivateKey)
	create("RSA key", append(rsaPrivateAttrs(rsaKey),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte{0x01}),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "Private key 1"),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	))
	create("RSA certificate", certAttrs(cr.auth.AuthCert, []byte{0x01}, "Certificate 1"))
	ecKey := cr.sign.SignKey.(*ecdsa.PrivateKey)
	create("EC key", append(ecPrivateAttrs(t, ecKey),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte{0x02}),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "Private key 2"),
		pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_AUTHENTICATE, true),
	))
	create("EC certificate", certAttrs(cr.sign.SignCert, []byte{0x02}, "Certificate 2"))
	create("CA certificate", certAttrs(cr.pki.AuthCA, []byte{0xCA}, "NHS TEST Authentication G2"))
	return hsmToken{Module: SoftHSMModule, AuthCert: cr.auth.AuthCert, SignCert: cr.sign.SignCert}
}

// setenv is t.Setenv for testing.TB (benchmarks included).
func setenv(t testing.TB, key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

// Private keys are imported as real tokens hold them: private, sensitive,
// not extractable, so they are invisible before login.
func keyBase(keyType uint) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}
}

func rsaPrivateAttrs(k *rsa.PrivateKey) []*pkcs11.Attribute {
	k.Precompute()
	return append(keyBase(pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, bigBytes(k.E)),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
	)
}

func bigBytes(e int) []byte {
	var b []byte
	for ; e > 0; e >>= 8 {
		b = append([]byte{byte(e)}, b...)
	}
	return b
}

func ecPrivateAttrs(t testing.TB, k *ecdsa.PrivateKey) []*pkcs11.Attribute {
	t.Helper()
	oids := map[elliptic.Curve]asn1.ObjectIdentifier{
		elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
		elliptic.P384(): {1, 3, 132, 0, 34},
	}
	params, err := asn1.Marshal(oids[k.Curve])
	if err != nil {
		t.Fatal(err)
	}
	size := (k.Curve.Params().BitSize + 7) / 8
	return append(keyBase(pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, k.D.FillBytes(make([]byte, size))),
	)
}

func certAttrs(c *x509.Certificate, id []byte, label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, c.RawSubject),
		pkcs11.NewAttribute(pkcs11.CKA_ISSUER, c.RawIssuer),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, c.Raw),
	}
}

// openHSM opens the token as the agent would, with a series 8 identity.
func openHSM(t testing.TB, tok hsmToken, cfg Config) *Card {
	t.Helper()
	cfg.Module = tok.Module
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Open(ctx, cfg, pcsc.CardInfo{Kind: pcsc.KindSeries8}, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func staticPIN(pin string) pcsc.PINFunc {
	return func() ([]byte, error) { return []byte(pin), nil }
}

func mustSigner(t testing.TB, c *Card, ref pcsc.KeyRef, pin pcsc.PINFunc) crypto.Signer {
	t.Helper()
	k, err := c.PrivateKey(ref, pin)
	if err != nil {
		t.Fatalf("PrivateKey(%s): %v", ref, err)
	}
	return k
}
