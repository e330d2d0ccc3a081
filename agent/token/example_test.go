package token_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/token"
)

// docExample reads the worked example of docs/protocol.md: the lines
// "name value" of the code block that follows "**Worked example**".
func docExample(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "**Worked example**")
	if i < 0 {
		t.Fatal("docs/protocol.md has no worked example")
	}
	s = s[i:]
	start := strings.Index(s, "```\n")
	end := strings.Index(s[start+4:], "```")
	if start < 0 || end < 0 {
		t.Fatal("the worked example has no code block")
	}
	out := map[string]string{}
	for _, line := range strings.Split(s[start+4:start+4+end], "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2:
			out[f[0]] = f[1]
		case len(f) == 3 && f[0] == "key":
			out["key "+f[1]] = f[2]
		}
	}
	for _, k := range []string{"origin", "challenge", "tbs", "sha256", "sha384", "key d", "key x", "key y", "signature"} {
		if out[k] == "" {
			t.Fatalf("the worked example has no %q", k)
		}
	}
	return out
}

func unhexDoc(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

// TestProtocolWorkedExample recomputes the worked example of
// docs/protocol.md from its origin and challenge, checks the key, and has
// the verifier accept the documented ES256 signature (raw r||s).
func TestProtocolWorkedExample(t *testing.T) {
	ex := docExample(t)
	origin, challenge := ex["origin"], ex["challenge"]

	// Independently of token.ToBeSigned: the document's own recipe.
	o, c := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(challenge))
	tbs := append(append(append([]byte("cardagent-auth-v1"), 0), o[:]...), c[:]...)
	if want := unhexDoc(t, ex["tbs"]); !bytes.Equal(tbs, want) || !bytes.Equal(token.ToBeSigned(origin, challenge), want) {
		t.Errorf("tbs: recipe %x, token.ToBeSigned %x, document %s", tbs, token.ToBeSigned(origin, challenge), ex["tbs"])
	}
	d256, d384 := sha256.Sum256(tbs), sha512.Sum384(tbs)
	for _, tt := range []struct {
		alg  string
		want []byte
		doc  string
	}{
		{token.ES256, d256[:], ex["sha256"]},
		{token.RS256, d256[:], ex["sha256"]},
		{token.ES384, d384[:], ex["sha384"]},
	} {
		got, err := token.Digest(tt.alg, origin, challenge)
		if err != nil || !bytes.Equal(got, tt.want) || !bytes.Equal(got, unhexDoc(t, tt.doc)) {
			t.Errorf("%s digest %x (%v), document %s", tt.alg, got, err, tt.doc)
		}
	}

	curve := elliptic.P256()
	key := &ecdsa.PrivateKey{D: new(big.Int).SetBytes(unhexDoc(t, ex["key d"]))}
	key.Curve = curve
	key.X, key.Y = curve.ScalarBaseMult(unhexDoc(t, ex["key d"]))
	if key.X.Cmp(new(big.Int).SetBytes(unhexDoc(t, ex["key x"]))) != 0 || key.Y.Cmp(new(big.Int).SetBytes(unhexDoc(t, ex["key y"]))) != 0 {
		t.Fatalf("the public point is not d's")
	}
	sig, err := token.DecodeBinary(ex["signature"])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	if !ecdsa.Verify(&key.PublicKey, d256[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the documented signature does not verify as r||s over sha256")
	}

	// The verifier accepts it in a token (the key's certificate as its own root).
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "555253521108_EXAMPLE_WORKED"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	store := token.NewMemoryStore()
	if err := store.Add(challenge, time.Minute); err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Roots: roots, Challenges: store}
	tok := &token.Token{Format: token.Format, Algorithm: token.ES256, Certificate: token.EncodeBinary(der), Origin: origin, Signature: ex["signature"]}
	if _, err := v.Verify(tok, origin, challenge); err != nil {
		t.Errorf("the verifier refuses the worked example: %v", err)
	}
}

// TestProtocolWebEIDExample recomputes the Web eID worked example of
// docs/protocol.md and has both the raw ECDSA check and VerifyWebEID accept
// its signature.
func TestProtocolWebEIDExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "**Web eID worked example**")
	if i < 0 {
		t.Fatal("docs/protocol.md has no Web eID worked example")
	}
	s = s[i:]
	start := strings.Index(s, "```\n")
	end := strings.Index(s[start+4:], "```")
	ex := map[string]string{}
	for _, line := range strings.Split(s[start+4:start+4+end], "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			ex[f[0]] = f[1]
		}
	}
	origin, nonce := ex["origin"], ex["nonce"]
	o, n := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(nonce))
	d := sha256.Sum256(append(o[:], n[:]...))
	if hex.EncodeToString(o[:]) != ex["hash_origin"] || hex.EncodeToString(n[:]) != ex["hash_nonce"] || hex.EncodeToString(d[:]) != ex["digest"] {
		t.Errorf("hashes %x %x %x, document %v", o, n, d, ex)
	}
	if got, err := token.WebEIDDigest(token.ES256, origin, nonce); err != nil || !bytes.Equal(got, d[:]) {
		t.Errorf("WebEIDDigest %x (%v)", got, err)
	}

	key := docKey(t)
	sig, err := base64.StdEncoding.Strict().DecodeString(ex["signature"])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	if !ecdsa.Verify(&key.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the documented Web eID signature does not verify")
	}
	der, roots := selfSignedFor(t, key)
	store := token.NewMemoryStore()
	if err := store.Add(nonce, time.Minute); err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Roots: roots, Challenges: store}
	tok := token.NewWebEIDToken(token.ES256, der, sig, "test")
	if _, err := v.VerifyWebEID(tok, origin, nonce); err != nil {
		t.Errorf("VerifyWebEID refuses the worked example: %v", err)
	}
}

// docKey is the worked example's P-256 key.
func docKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	ex := docExample(t)
	curve := elliptic.P256()
	d := unhexDoc(t, ex["key d"])
	key := &ecdsa.PrivateKey{D: new(big.Int).SetBytes(d)}
	key.Curve = curve
	key.X, key.Y = curve.ScalarBaseMult(d)
	return key
}

// selfSignedFor is a certificate for key that is its own root.
func selfSignedFor(t *testing.T, key *ecdsa.PrivateKey) ([]byte, *x509.CertPool) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "555253521108_EXAMPLE_WORKED"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return der, roots
}
