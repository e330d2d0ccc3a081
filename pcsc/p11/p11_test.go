package p11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc"
)

func uintp(u uint) *uint { return &u }

func TestChooseToken(t *testing.T) {
	const reader = "Virtual PCD 00 00"
	long := "HID Global OMNIKEY 3x21 Smart Card Reader [OMNIKEY 3x21 Smart Card Reader] 00 00"
	a := token{Slot: 1, Description: reader, Label: "NHS CARD"}
	b := token{Slot: 2, Description: "Virtual PCD 00 01", Label: "NHS CARD"}
	c := token{Slot: 3, Description: "Other Reader", Label: "OTHER"}
	trunc := token{Slot: 4, Description: long[:64], Label: "X"}
	for _, tc := range []struct {
		name     string
		tokens   []token
		cfg      Config
		reader   string
		want     uint
		wantErr  error
		wantSlot bool
	}{
		{name: "none", tokens: nil, wantErr: pcsc.ErrNoCard},
		{name: "single", tokens: []token{c}, reader: reader, want: 3},
		{name: "by-reader", tokens: []token{a, b, c}, reader: reader, want: 1},
		{name: "by-reader-padded", tokens: []token{{Slot: 9, Description: reader + "                  "}, c}, reader: reader, want: 9},
		{name: "by-reader-truncated", tokens: []token{trunc, c}, reader: long, want: 4},
		{name: "ambiguous", tokens: []token{b, c}, reader: reader, wantErr: ErrTokenAmbiguous},
		{name: "ambiguous-no-reader", tokens: []token{a, c}, wantErr: ErrTokenAmbiguous},
		{name: "two-in-reader", tokens: []token{a, {Slot: 5, Description: reader}}, reader: reader, wantErr: ErrTokenAmbiguous},
		{name: "by-label", tokens: []token{a, c}, cfg: Config{TokenLabel: "OTHER"}, reader: reader, want: 3},
		{name: "label-padded", tokens: []token{{Slot: 7, Label: "OTHER                           "}}, cfg: Config{TokenLabel: "OTHER"}, want: 7},
		{name: "label-then-reader", tokens: []token{a, b}, cfg: Config{TokenLabel: "NHS CARD"}, reader: "Virtual PCD 00 01", want: 2},
		{name: "label-missing", tokens: []token{a}, cfg: Config{TokenLabel: "NOPE"}, wantErr: pcsc.ErrNoCard},
		{name: "by-slot", tokens: []token{a, b}, cfg: Config{Slot: uintp(2), TokenLabel: "ignored"}, reader: reader, want: 2},
		{name: "slot-missing", tokens: []token{a}, cfg: Config{Slot: uintp(8)}, wantErr: pcsc.ErrNoCard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseToken(tc.tokens, tc.cfg, tc.reader)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Slot != tc.want {
				t.Fatalf("chose slot %d (%v), want %d", got.Slot, err, tc.want)
			}
		})
	}
}

var (
	keyOnce sync.Once
	testKey *ecdsa.PrivateKey
)

// certDER makes a certificate with the given key usage (and CA flag), signed by a P-256 key.
func certDER(t testing.TB, cn string, ku x509.KeyUsage, ca bool) []byte {
	t.Helper()
	keyOnce.Do(func() { testKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              ku,
		BasicConstraintsValid: ca,
		IsCA:                  ca,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, testKey.Public(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestClassify(t *testing.T) {
	ds := x509.KeyUsageDigitalSignature
	nr := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	auth := certDER(t, "auth", ds, false)
	sign := certDER(t, "sign", nr, false)
	other := certDER(t, "other", ds|x509.KeyUsageKeyEncipherment, false)
	ca := certDER(t, "ca", x509.KeyUsageCertSign, true)
	type want map[string]pcsc.KeyRef // CN -> ref
	for _, tc := range []struct {
		name string
		objs []object
		want want
	}{
		{"opensc-piv-labels", []object{
			{ID: []byte{2}, Label: "Certificate for Digital Signature", Value: auth},
			{ID: []byte{1}, Label: "Certificate for PIV Authentication", Value: sign},
			{ID: []byte{3}, Label: "Certificate for Key Management", Value: other},
		}, want{"auth": "9c", "sign": "9a", "other": "9d"}},
		{"key-usage-and-fallback", []object{
			{ID: []byte{1}, Label: "Certificate 1", Value: auth},
			{ID: []byte{2}, Label: "Certificate 2", Value: sign},
			{ID: []byte{0xCA}, Label: "Root", Value: ca},
		}, want{"auth": "9a", "sign": "9c"}},
		{"decrypt-key-is-authentication", []object{
			{ID: []byte{1}, Value: other},
			{ID: []byte{2}, Value: auth, KeyVisible: true, KeyDecrypt: true},
			{ID: []byte{3}, Value: sign, KeyVisible: true},
		}, want{"auth": "9a", "sign": "9c", "other": "id:01"}},
		{"labels", []object{
			{ID: []byte{1}, Label: "NHS Signing", Value: other},
			{ID: []byte{2}, Label: "NHS Authentication", Value: certDER(t, "auth2", x509.KeyUsageKeyEncipherment, false)},
		}, want{"other": "9c", "auth2": "9a"}},
		{"two-candidates-no-guess", []object{
			{ID: []byte{1}, Value: auth},
			{ID: []byte{2}, Value: other},
		}, want{"auth": "id:01", "other": "id:02"}},
		{"no-id-and-garbage", []object{
			{Value: []byte("not a certificate")},
			{Value: auth},
			{Value: other},
		}, want{"auth": "object:0", "other": "object:1"}},
		{"duplicate-ids", []object{
			{ID: []byte{7}, Value: auth},
			{ID: []byte{7}, Value: other},
		}, want{"auth": "id:07", "other": "object:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.objs)
			if len(got) != len(tc.want) {
				t.Errorf("%d certificates, want %d", len(got), len(tc.want))
			}
			seen := map[pcsc.KeyRef]bool{}
			for _, c := range got {
				cn := c.Cert.Subject.CommonName
				if seen[c.Key] {
					t.Errorf("key %s given twice", c.Key)
				}
				seen[c.Key] = true
				if w, ok := tc.want[cn]; !ok || w != c.Key {
					t.Errorf("%s -> %q, want %q", cn, c.Key, w)
				}
			}
		})
	}
}

func TestPlanSign(t *testing.T) {
	rsaKey := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}
	keyOnce.Do(func() { testKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	d32, d48, d64 := make([]byte, 32), make([]byte, 48), make([]byte, 64)
	all := func(uint) bool { return true }
	noPSS := func(m uint) bool { return m != ckmRSAPKCSPSS }
	for _, tc := range []struct {
		name    string
		pub     crypto.PublicKey
		digest  []byte
		opts    crypto.SignerOpts
		has     func(uint) bool
		mech    uint
		inLen   int
		salt    uint
		wantErr error
	}{
		{name: "pkcs1-sha256", pub: rsaKey, digest: d32, opts: crypto.SHA256, has: all, mech: ckmRSAPKCS, inLen: 19 + 32},
		{name: "pkcs1-sha512-unknown-mechs", pub: rsaKey, digest: d64, opts: crypto.SHA512, mech: ckmRSAPKCS, inLen: 19 + 64},
		{name: "pkcs1-raw", pub: rsaKey, digest: make([]byte, 36), opts: crypto.Hash(0), has: all, mech: ckmRSAPKCS, inLen: 36},
		{name: "pkcs1-md5sha1", pub: rsaKey, digest: make([]byte, 36), opts: crypto.MD5SHA1, has: all, mech: ckmRSAPKCS, inLen: 36},
		{name: "pkcs1-md4", pub: rsaKey, digest: make([]byte, 16), opts: crypto.MD4, has: all, wantErr: pcsc.ErrUnsupportedAlgorithm},
		{name: "pss-equals-hash", pub: rsaKey, digest: d32, opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}, has: all, mech: ckmRSAPKCSPSS, inLen: 32, salt: 32},
		{name: "pss-auto", pub: rsaKey, digest: d48, opts: &rsa.PSSOptions{Hash: crypto.SHA384}, has: all, mech: ckmRSAPKCSPSS, inLen: 48, salt: 48},
		{name: "pss-explicit", pub: rsaKey, digest: d32, opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 20}, has: all, mech: ckmRSAPKCSPSS, inLen: 32, salt: 20},
		{name: "pss-not-offered", pub: rsaKey, digest: d32, opts: &rsa.PSSOptions{Hash: crypto.SHA256}, has: noPSS, wantErr: pcsc.ErrUnsupportedAlgorithm},
		{name: "ecdsa-sha256", pub: &testKey.PublicKey, digest: d32, opts: crypto.SHA256, has: all, mech: ckmECDSA, inLen: 32},
		{name: "ecdsa-sha512-truncated", pub: &testKey.PublicKey, digest: d64, opts: crypto.SHA512, has: all, mech: ckmECDSA, inLen: 32},
		{name: "ecdsa-pss", pub: &testKey.PublicKey, digest: d32, opts: &rsa.PSSOptions{Hash: crypto.SHA256}, has: all, wantErr: pcsc.ErrUnsupportedAlgorithm},
		{name: "ecdsa-not-offered", pub: &testKey.PublicKey, digest: d32, opts: crypto.SHA256, has: noPSS, mech: ckmECDSA, inLen: 32},
		{name: "ecdsa-missing", pub: &testKey.PublicKey, digest: d32, opts: crypto.SHA256, has: func(m uint) bool { return m == ckmRSAPKCS }, wantErr: pcsc.ErrUnsupportedAlgorithm},
		{name: "ed25519", pub: []byte("an ed25519 key"), digest: d32, opts: crypto.SHA256, has: all, wantErr: pcsc.ErrUnsupportedAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planSign(tc.pub, tc.digest, tc.opts, tc.has)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || p.mech != tc.mech || len(p.input) != tc.inLen || p.pssSalt != tc.salt {
				t.Fatalf("plan %+v, %v; want mech %#x, %d input bytes, salt %d", p, err, tc.mech, tc.inLen, tc.salt)
			}
		})
	}
	if _, err := planSign(rsaKey, d32, crypto.SHA384, all); err == nil {
		t.Error("a 32-byte digest for SHA-384 was accepted")
	}
	// The DigestInfo is the one Go's rsa package verifies.
	priv, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // test key, speed matters
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		digest := make([]byte, h.Size())
		rand.Read(digest)
		p, err := planSign(&priv.PublicKey, digest, h, all)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, 0, p.input) // what CKM_RSA_PKCS does
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(&priv.PublicKey, h, digest, sig); err != nil {
			t.Errorf("%v: DigestInfo signature does not verify: %v", h, err)
		}
	}
}

func TestFinish(t *testing.T) {
	p := signPlan{rsaSize: 4}
	if got, err := p.finish([]byte{1, 2}); err != nil || !bytes.Equal(got, []byte{0, 0, 1, 2}) {
		t.Errorf("short RSA signature: %x, %v; want left-padded", got, err)
	}
	if _, err := p.finish([]byte{1, 2, 3, 4, 5}); err == nil {
		t.Error("an RSA signature longer than the modulus was accepted")
	}
	keyOnce.Do(func() { testKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	digest := sha256.Sum256([]byte("message"))
	r, s, err := ecdsa.Sign(rand.Reader, testKey, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	der, err := signPlan{ecSize: 32}.finish(raw)
	if err != nil || !ecdsa.VerifyASN1(&testKey.PublicKey, digest[:], der) {
		t.Errorf("converted ECDSA signature does not verify (%v)", err)
	}
	for _, bad := range [][]byte{raw[:63], append(raw, 0), make([]byte, 64)} {
		if _, err := rawToDER(bad, 32); err == nil {
			t.Errorf("rawToDER accepted %d bytes %x", len(bad), bad[:4])
		}
	}
}

func TestCheckPINFormat(t *testing.T) {
	for _, tc := range []struct {
		pin      string
		min, max int
		ok       bool
	}{
		{"123456", 6, 8, true},
		{"12345678", 6, 8, true},
		{"Pa55word", 0, 0, true},
		{"12345", 6, 8, false},
		{"123456789", 6, 8, false},
		{"", 0, 0, false},
		{"1234\x00", 0, 0, false},
		{"1234\n", 0, 0, false},
		{"1234\x7f", 0, 0, false},
		{"\xc3\x28", 0, 0, false},
		{"pässwort", 0, 0, true},
	} {
		err := checkPINFormat([]byte(tc.pin), tc.min, tc.max)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, pcsc.ErrPINFormat)) {
			t.Errorf("checkPINFormat(%q, %d, %d) = %v, want ok=%v", tc.pin, tc.min, tc.max, err, tc.ok)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	for code, want := range map[uint]error{
		ckrDeviceRemoved:        pcsc.ErrCardRemoved,
		ckrTokenNotPresent:      pcsc.ErrCardRemoved,
		ckrSessionHandleInvalid: pcsc.ErrCardRemoved,
		ckrSessionClosed:        pcsc.ErrCardRemoved,
		ckrDeviceError:          pcsc.ErrCardUnresponsive,
		ckrSlotIDInvalid:        pcsc.ErrNoReader,
		ckrPINLenRange:          pcsc.ErrPINFormat,
		ckrPINInvalid:           pcsc.ErrPINFormat,
		ckrPINLocked:            pcsc.ErrPINBlocked,
		ckrFunctionCanceled:     pcsc.ErrCancelled,
		ckrMechanismInvalid:     pcsc.ErrUnsupportedAlgorithm,
		ckrKeyHandleInvalid:     pcsc.ErrNotFound,
		ckrTokenNotRecognized:   pcsc.ErrUnsupportedCard,
	} {
		err := fmt.Errorf("signing: %w", &Error{Code: code})
		if !errors.Is(err, want) {
			t.Errorf("%s does not match %v", ckrNames[code], want)
		}
		if errors.Is(err, pcsc.ErrServiceUnavailable) {
			t.Errorf("%s matches an unrelated error", ckrNames[code])
		}
	}
	if errors.Is(&Error{Code: ckrGeneralError}, pcsc.ErrCardRemoved) {
		t.Error("CKR_GENERAL_ERROR matches ErrCardRemoved by itself")
	}
	if got := (&Error{Code: ckrPINLocked}).Error(); got != "PKCS#11 module returned CKR_PIN_LOCKED" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Code: 0x80000001}).Error(); got != "PKCS#11 module returned 0x80000001" {
		t.Errorf("vendor code: Error() = %q", got)
	}
}

func TestRetriesFromFlags(t *testing.T) {
	for _, tc := range []struct {
		flags   uint
		puk     bool
		retries int
		blocked bool
	}{
		{0, false, -1, false},
		{ckfUserPINCountLow, false, -1, false},
		{ckfUserPINFinalTry, false, 1, false},
		{ckfUserPINLocked | ckfUserPINFinalTry, false, 0, true},
		{ckfSOPINFinalTry, true, 1, false},
		{ckfSOPINLocked, true, 0, true},
		{ckfUserPINLocked, true, -1, false},
	} {
		r, b := retriesFromFlags(tc.flags, tc.puk)
		if r != tc.retries || b != tc.blocked {
			t.Errorf("flags %#x puk %v: %d %v, want %d %v", tc.flags, tc.puk, r, b, tc.retries, tc.blocked)
		}
	}
	if st := pinStatus(0, 4, ^uint(0)); st.MinLen != 4 || st.MaxLen != 0 || st.Retries != -1 {
		t.Errorf("pinStatus with CK_UNAVAILABLE_INFORMATION max: %+v", st)
	}
}

func TestKnownModules(t *testing.T) {
	for goos, want := range map[string]string{
		"linux":   "/usr/local/AWP/lib/libOcsCryptoki.so",
		"darwin":  "/Library/AWP/lib/libOcsCryptoki.dylib",
		"windows": `C:\Windows\System32\OcsCryptoki.dll`,
	} {
		if got := KnownModules(goos); len(got) == 0 || got[0] != want {
			t.Errorf("KnownModules(%s) = %v, want %s first", goos, got, want)
		}
	}
}

// FuzzRawToDER: whatever a module returns as an ECDSA signature, the
// conversion either fails or yields DER that parses back to the same r and s.
func FuzzRawToDER(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0x01}, 64), 32)
	f.Add(append(make([]byte, 48), bytes.Repeat([]byte{0xFF}, 48)...), 48)
	f.Add([]byte{0x80, 0x01}, 1)
	f.Fuzz(func(t *testing.T, raw []byte, size int) {
		der, err := rawToDER(raw, size)
		if err != nil {
			return
		}
		var sig struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &sig)
		if err != nil || len(rest) != 0 {
			t.Fatalf("output does not parse: %v", err)
		}
		if !bytes.Equal(sig.R.FillBytes(make([]byte, size)), raw[:size]) || !bytes.Equal(sig.S.FillBytes(make([]byte, size)), raw[size:]) {
			t.Fatal("r or s changed in conversion")
		}
	})
}

// FuzzClassify: certificate objects from a token (any bytes, labels, IDs)
// never crash classification, and no key reference is given twice.
func FuzzClassify(f *testing.F) {
	f.Add(certDER(f, "seed", x509.KeyUsageDigitalSignature, false), "Certificate for PIV Authentication", []byte{1}, true, "", []byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, "sign", []byte{}, false, "auth", []byte{2})
	f.Fuzz(func(t *testing.T, der []byte, label string, id []byte, decrypt bool, label2 string, id2 []byte) {
		objs := []object{
			{ID: id, Label: label, Value: der, KeyVisible: decrypt, KeyDecrypt: decrypt},
			{ID: id2, Label: label2, Value: der},
		}
		seen := map[pcsc.KeyRef]bool{}
		for _, c := range classify(objs) {
			if c.Key == "" || seen[c.Key] {
				t.Fatalf("key reference %q empty or given twice", c.Key)
			}
			seen[c.Key] = true
		}
	})
}

// TestVerifySignature: what Sign checks before handing a token's signature
// on, for each kind of signature it makes.
func TestVerifySignature(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("to be signed"))
	pss := &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
	sign := func(k crypto.Signer, opts crypto.SignerOpts) []byte {
		sig, err := k.Sign(rand.Reader, digest[:], opts)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b }
	tests := []struct {
		name string
		pub  crypto.PublicKey
		sig  []byte
		opts crypto.SignerOpts
		ok   bool
	}{
		{"RSA PKCS#1 v1.5", &rk.PublicKey, sign(rk, crypto.SHA256), crypto.SHA256, true},
		{"RSA PKCS#1 v1.5, altered", &rk.PublicKey, flip(sign(rk, crypto.SHA256)), crypto.SHA256, false},
		{"RSA-PSS", &rk.PublicKey, sign(rk, pss), pss, true},
		{"RSA-PSS, altered", &rk.PublicKey, flip(sign(rk, pss)), pss, false},
		{"ECDSA", &ek.PublicKey, sign(ek, crypto.SHA256), crypto.SHA256, true},
		{"ECDSA, another key", &rk.PublicKey, sign(ek, crypto.SHA256), crypto.SHA256, false},
	}
	for _, tc := range tests {
		if err := verifySignature(tc.pub, digest[:], tc.sig, tc.opts); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
