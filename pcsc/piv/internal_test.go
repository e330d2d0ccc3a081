package piv

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// rawSign is what the card does: em^d mod n, left-padded to the modulus length.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, k.N).Bytes()
	return append(make([]byte, k.Size()-len(s)), s...)
}

var (
	oddKeyOnce sync.Once
	oddKey     *rsa.PrivateKey
	oddKeyErr  error
)

// rsaKeys returns RSA-1024 and RSA-2048 test keys, and a 1031-bit key whose
// encoded message is one byte shorter than the modulus (emBits = 1030, a
// multiple of 8 plus 6: emLen = 129 = k) ... and 1025 bits (emLen = k - 1).
func rsaKeys(t *testing.T) map[string]*rsa.PrivateKey {
	t.Helper()
	k1024, err := testpki.Key(testpki.RSA1024, 900)
	if err != nil {
		t.Fatal(err)
	}
	k2048, err := testpki.Key(testpki.RSA2048, 900)
	if err != nil {
		t.Fatal(err)
	}
	oddKeyOnce.Do(func() { oddKey, oddKeyErr = rsa.GenerateKey(rand.Reader, 1025) })
	if oddKeyErr != nil {
		t.Fatal(oddKeyErr)
	}
	return map[string]*rsa.PrivateKey{"1024": k1024.(*rsa.PrivateKey), "2048": k2048.(*rsa.PrivateKey), "1025": oddKey}
}

func TestEMSAPSSEncode(t *testing.T) {
	for name, key := range rsaKeys(t) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, salt := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, 0, 20} {
				if name != "2048" && h == crypto.SHA512 && salt == rsa.PSSSaltLengthEqualsHash {
					continue // 64+64+2 > 128: does not fit (tested below)
				}
				hh := h.New()
				hh.Write([]byte(name))
				digest := hh.Sum(nil)
				em, err := emsaPSSEncode(rand.Reader, &key.PublicKey, digest, h, salt)
				if err != nil {
					t.Fatalf("RSA-%s %v salt %d: %v", name, h, salt, err)
				}
				if len(em) != key.Size() {
					t.Fatalf("RSA-%s: encoded %d bytes for a %d-byte modulus", name, len(em), key.Size())
				}
				sig := rawSign(key, em)
				verifySalt := salt
				if salt == 0 {
					verifySalt = rsa.PSSSaltLengthAuto // 0 means auto to crypto/rsa; check the exact length below
				}
				if err := rsa.VerifyPSS(&key.PublicKey, h, digest, sig, &rsa.PSSOptions{SaltLength: verifySalt}); err != nil {
					t.Errorf("RSA-%s %v salt %d: VerifyPSS: %v", name, h, salt, err)
				}
				if salt == 20 {
					if err := rsa.VerifyPSS(&key.PublicKey, h, digest, sig, &rsa.PSSOptions{SaltLength: 20}); err != nil {
						t.Errorf("RSA-%s %v: explicit salt 20 does not verify: %v", name, h, err)
					}
				}
				digest[0] ^= 1
				if rsa.VerifyPSS(&key.PublicKey, h, digest, sig, nil) == nil {
					t.Errorf("RSA-%s %v: verifies over another digest", name, h)
				}
			}
		}
	}
	k := rsaKeys(t)["1024"]
	if _, err := emsaPSSEncode(rand.Reader, &k.PublicKey, make([]byte, 64), crypto.SHA512, rsa.PSSSaltLengthEqualsHash); !errors.Is(err, pcsc.ErrUnsupportedAlgorithm) {
		t.Errorf("salt that does not fit: %v", err)
	}
}

// PKCS#1 v1.5 is deterministic: our encoding raised to d equals crypto/rsa's signature.
func TestEMSAPKCS1v15Encode(t *testing.T) {
	for name, key := range rsaKeys(t) {
		for h := range digestInfoPrefix {
			digest := make([]byte, h.Size())
			rand.Read(digest)
			em, err := rsaInput(rand.Reader, &key.PublicKey, digest, h)
			if err != nil {
				t.Fatalf("RSA-%s %v: %v", name, h, err)
			}
			want, err := rsa.SignPKCS1v15(nil, key, h, digest)
			if err != nil {
				t.Fatal(err)
			}
			if got := rawSign(key, em); !bytes.Equal(got, want) {
				t.Errorf("RSA-%s %v: signature differs from crypto/rsa's", name, h)
			}
		}
	}
}

func TestPadPIN(t *testing.T) {
	tests := []struct {
		pin  string
		want string // hex of the padded PIN, "" for ErrPINFormat
	}{
		{"123456", "313233343536ffff"},
		{"1234567", "31323334353637ff"},
		{"12345678", "3132333435363738"},
		{"abc123", "616263313233ffff"}, // older NHS PINs may hold letters
		{"12345", ""},
		{"123456789", ""},
		{"", ""},
		{"12 456", ""},
		{"1234\xff6", ""},
		{"1234\x006", ""},
	}
	for _, tt := range tests {
		got, err := padPIN([]byte(tt.pin))
		if tt.want == "" {
			if !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("padPIN(%q): %x, %v; want ErrPINFormat", tt.pin, got, err)
			}
			if err != nil && strings.Contains(err.Error(), tt.pin) && tt.pin != "" {
				t.Errorf("error %q contains the PIN", err)
			}
			continue
		}
		if err != nil || pcsc.HexString(got) != pcsc.HexString(mustHex(tt.want)) {
			t.Errorf("padPIN(%q) = %x, %v; want %s", tt.pin, got, err, tt.want)
		}
	}
	if p, err := padPUK([]byte{0, 1, 2, 3, 4, 5, 6, 0xFF}); err != nil || len(p) != 8 {
		t.Errorf("an 8-byte binary PUK: %x, %v", p, err)
	}
	if _, err := padPUK([]byte("1234")); !errors.Is(err, pcsc.ErrPINFormat) {
		t.Errorf("short PUK: %v", err)
	}
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}

func TestECDSAInput(t *testing.T) {
	k256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	long := bytes.Repeat([]byte{0xAB}, 64)
	tests := []struct {
		key    *ecdsa.PublicKey
		digest []byte
		opts   crypto.SignerOpts
		want   []byte
	}{
		{&k256.PublicKey, long[:32], crypto.SHA256, long[:32]},
		{&k256.PublicKey, long, crypto.SHA512, long[:32]},                                   // truncated to the leftmost 32 bytes
		{&k384.PublicKey, long[:32], crypto.SHA256, append(make([]byte, 16), long[:32]...)}, // left-padded: same integer
		{&k384.PublicKey, long, crypto.SHA512, long[:48]},
	}
	for i, tt := range tests {
		got, err := ecdsaInput(tt.key, tt.digest, tt.opts)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%d: %x, %v", i, got, err)
		}
	}
	if _, err := ecdsaInput(&k256.PublicKey, long[:31], crypto.SHA256); err == nil {
		t.Error("a 31-byte SHA-256 digest was accepted")
	}
	if _, err := ecdsaInput(&k256.PublicKey, long[:32], &rsa.PSSOptions{Hash: crypto.SHA256}); !errors.Is(err, pcsc.ErrUnsupportedAlgorithm) {
		t.Errorf("PSS with ECDSA: %v", err)
	}
	// A card answering r||s instead of DER is converted.
	digest := long[:32]
	r, s, _ := ecdsa.Sign(rand.Reader, k256, digest)
	raw := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	der, err := ecdsaFinish(&k256.PublicKey, digest, raw)
	if err != nil || !ecdsa.VerifyASN1(&k256.PublicKey, digest, der) {
		t.Errorf("r||s answer: %v", err)
	}
	raw[5] ^= 1
	if _, err := ecdsaFinish(&k256.PublicKey, digest, raw); err == nil {
		t.Error("a wrong signature was accepted")
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func container(cert []byte, info ...byte) []byte {
	v := pcsc.AppendTLV(nil, 0x70, cert)
	if len(info) > 0 {
		v = pcsc.AppendTLV(v, 0x71, info)
	}
	v = pcsc.AppendTLV(v, 0xFE, nil)
	return pcsc.AppendTLV(nil, 0x53, v)
}

func TestParseCertContainer(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x05}
	tests := []struct {
		name string
		in   []byte
		want []byte // nil: error
	}{
		{"plain", container(der, 0x00), der},
		{"no CertInfo", container(der), der},
		{"compressed", container(gz(der), 0x01), der},
		{"compressed flag, not gzip", container(der, 0x01), nil},
		{"gzip bomb", container(gz(make([]byte, 1<<20)), 0x01), nil},
		{"no certificate", pcsc.AppendTLV(nil, 0x53, pcsc.AppendTLV(nil, 0x71, []byte{0})), nil},
		{"empty certificate", container(nil, 0x00), nil},
		{"wrong outer tag", pcsc.AppendTLV(nil, 0x54, pcsc.AppendTLV(nil, 0x70, der)), nil},
		{"truncated", container(der)[:6], nil},
		{"long CertInfo", container(der, 0, 0), nil},
	}
	for _, tt := range tests {
		got, err := parseCertContainer(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s: accepted (%d bytes)", tt.name, len(got))
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %x, %v", tt.name, got, err)
		}
	}
}

func TestParseCHUID(t *testing.T) {
	guid := bytes.Repeat([]byte{0x42}, 16)
	fascn := bytes.Repeat([]byte{0x11}, 25)
	mk := func(objs ...[]byte) []byte { return pcsc.AppendTLV(nil, 0x53, bytes.Join(objs, nil)) }
	tests := []struct {
		name        string
		in          []byte
		guid, fascn []byte
		err         bool
	}{
		{"both", mk(pcsc.AppendTLV(nil, 0x30, fascn), pcsc.AppendTLV(nil, 0x34, guid)), guid, fascn, false},
		{"zero GUID", mk(pcsc.AppendTLV(nil, 0x30, fascn), pcsc.AppendTLV(nil, 0x34, make([]byte, 16))), nil, fascn, false},
		{"non-federal FASC-N", mk(pcsc.AppendTLV(nil, 0x30, nonFederalFASCN)), nil, nil, false},
		{"short GUID", mk(pcsc.AppendTLV(nil, 0x34, guid[:8])), nil, nil, false},
		{"empty", mk(), nil, nil, false},
		{"not a 53 object", pcsc.AppendTLV(nil, 0x54, nil), nil, nil, true},
		{"garbage", []byte{0x53, 0x82, 0xFF}, nil, nil, true},
	}
	for _, tt := range tests {
		c, err := parseCHUID(tt.in)
		if (err != nil) != tt.err || !bytes.Equal(c.GUID, tt.guid) || !bytes.Equal(c.FASCN, tt.fascn) {
			t.Errorf("%s: %+v, %v", tt.name, c, err)
		}
	}
}

func TestParseAPTAndKeyHistory(t *testing.T) {
	apt := pcsc.AppendTLV(nil, 0x61, bytes.Join([][]byte{
		pcsc.AppendTLV(nil, 0x4F, []byte{0x00, 0x00, 0x10, 0x00, 0x01, 0x00}),
		pcsc.AppendTLV(nil, 0x50, []byte("NHS\x1b[31m PIV")),
		pcsc.AppendTLV(nil, 0xAC, append(pcsc.AppendTLV(nil, 0x80, []byte{0x07}), pcsc.AppendTLV(nil, 0x80, []byte{0x11})...)),
	}, nil))
	info, err := parseAPT(apt)
	if err != nil || info.Label != "NHS[31m PIV" || !bytes.Equal(info.Algs, []byte{0x07, 0x11}) {
		t.Errorf("APT: %+v, %v", info, err)
	}
	if name := appletName(info); name != "PIV a000000308000010000100 (NHS[31m PIV)" {
		t.Errorf("applet name %q", name)
	}
	if _, err := parseAPT([]byte{0x6F, 0x00}); err == nil {
		t.Error("a SELECT answer without 61 was accepted")
	}
	h, err := parseKeyHistory(pcsc.AppendTLV(nil, 0x53, []byte{0xC1, 0x01, 0x03, 0xC2, 0x01, 0x01, 0xFE, 0x00}))
	if err != nil || h.OnCard != 3 || h.OffCard != 1 {
		t.Errorf("key history %+v, %v", h, err)
	}
	if _, err := parseKeyHistory(pcsc.AppendTLV(nil, 0x53, []byte{0xC1, 0x01, 21})); err == nil {
		t.Error("21 retired keys accepted")
	}
}

func TestSlotFor(t *testing.T) {
	for ref, want := range map[pcsc.KeyRef]uint32{"9a": 0x5FC105, "9C": 0x5FC10A, "9d": 0x5FC10B, "9e": 0x5FC101, "82": 0x5FC10D, "95": 0x5FC120} {
		s, ok := slotFor(ref)
		if !ok || s.object != want {
			t.Errorf("slotFor(%s) = %+v, %v", ref, s, ok)
		}
	}
	for _, ref := range []pcsc.KeyRef{"", "9b", "81", "96", "9a9a", "zz"} {
		if _, ok := slotFor(ref); ok {
			t.Errorf("slotFor(%q) accepted", ref)
		}
	}
}
