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
