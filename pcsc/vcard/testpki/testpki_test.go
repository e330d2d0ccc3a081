package testpki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

func newPKI(t *testing.T) *testpki.PKI {
	t.Helper()
	p, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHierarchy(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		cert *x509.Certificate
		dn   string
	}{
		{p.Root, "CN=NHS TEST Root Authority G2,OU=CA,O=nhs,C=GB"},
		{p.AuthCA, "CN=NHS TEST Authentication G2,OU=CA,O=nhs,C=GB"},
		{p.SignCA, "CN=NHS TEST Signing G2,OU=CA,O=nhs,C=GB"},
	} {
		if got := tc.cert.Subject.String(); got != tc.dn {
			t.Errorf("subject %q, want %q", got, tc.dn)
		}
		if !tc.cert.IsCA || tc.cert.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("%s: IsCA %v, algorithm %v", tc.dn, tc.cert.IsCA, tc.cert.SignatureAlgorithm)
		}
		if _, err := tc.cert.Verify(x509.VerifyOptions{Roots: p.Roots()}); err != nil {
			t.Errorf("%s: %v", tc.dn, err)
		}
	}
	if len(p.Chain()) != 3 {
		t.Errorf("chain of %d", len(p.Chain()))
	}
}

func TestIssueCard(t *testing.T) {
	p := newPKI(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, kt := range testpki.KeyTypes {
		for _, days := range testpki.ExpiryCases {
			t.Run(fmt.Sprintf("%s/%dd", kt, days), func(t *testing.T) {
				spec := testpki.CardSpec{UUID: "555253521108", Surname: "Random", Forename: "UserQ", DaysLeft: days, KeyType: kt, Now: now}
				c, err := p.IssueCard(spec)
				if err != nil {
					t.Fatal(err)
				}
				checkCard(t, p, c, now, days, kt)
			})
		}
	}
}

func checkCard(t *testing.T, p *testpki.PKI, c *testpki.CardCreds, now time.Time, days int, kt testpki.KeyType) {
	t.Helper()
	const dn = "CN=555253521108_RANDOM_USERQ,OU=People,O=nhs"
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		issuer  *x509.Certificate
		ku      x509.KeyUsage
		eku     []x509.ExtKeyUsage
		keyPair interface{ Equal(crypto.PublicKey) bool }
	}{
		{"authentication", c.AuthCert, p.AuthCA, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.AuthKey.Public().(interface{ Equal(crypto.PublicKey) bool })},
		{"signing", c.SignCert, p.SignCA, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, nil, c.SignKey.Public().(interface{ Equal(crypto.PublicKey) bool })},
	} {
		cert := tc.cert
		if got := cert.Subject.String(); got != dn {
			t.Errorf("%s: subject %q, want %q", tc.name, got, dn)
		}
		if !bytes.Equal(cert.RawIssuer, tc.issuer.RawSubject) {
			t.Errorf("%s: issuer %s", tc.name, cert.Issuer)
		}
		if cert.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("%s: signature algorithm %v", tc.name, cert.SignatureAlgorithm)
		}
		if cert.KeyUsage != tc.ku {
			t.Errorf("%s: key usage %b, want %b", tc.name, cert.KeyUsage, tc.ku)
		}
		if len(cert.ExtKeyUsage) != len(tc.eku) || (len(tc.eku) > 0 && cert.ExtKeyUsage[0] != tc.eku[0]) {
			t.Errorf("%s: ext key usage %v, want %v", tc.name, cert.ExtKeyUsage, tc.eku)
		}
		if !tc.keyPair.Equal(cert.PublicKey) {
			t.Errorf("%s: certificate does not hold the returned key", tc.name)
		}
		if want := now.Add(time.Duration(days) * 24 * time.Hour); !cert.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v, want %v", tc.name, cert.NotAfter, want)
		}
		if want := cert.NotAfter.AddDate(-2, 0, 0); !cert.NotBefore.Equal(want) {
			t.Errorf("%s: NotBefore %v, want %v", tc.name, cert.NotBefore, want)
		}
		critical := map[string]bool{}
		for _, e := range cert.Extensions {
			critical[e.Id.String()] = e.Critical
		}
		for oid, want := range map[string]bool{"2.5.29.15": true, "2.5.29.32": true, "2.5.29.16": false, "2.5.29.31": false, "1.3.6.1.5.5.7.1.1": false} {
			got, ok := critical[oid]
			if !ok || got != want {
				t.Errorf("%s: extension %s present %v critical %v, want critical %v", tc.name, oid, ok, got, want)
			}
		}
		if len(cert.PolicyIdentifiers) != 1 || !cert.PolicyIdentifiers[0].Equal(asn1.ObjectIdentifier(testpki.OIDNHSPolicy)) {
			t.Errorf("%s: policies %v", tc.name, cert.PolicyIdentifiers)
		}
		if len(cert.CRLDistributionPoints) != 1 || len(cert.OCSPServer) != 1 || cert.OCSPServer[0] != testpki.OCSPURL {
			t.Errorf("%s: CRL %v OCSP %v", tc.name, cert.CRLDistributionPoints, cert.OCSPServer)
		}
		nb, na, err := testpki.ParsePrivateKeyUsagePeriod(cert)
		if err != nil || !nb.Equal(cert.NotBefore) || !na.Equal(cert.NotAfter) {
			t.Errorf("%s: private key usage period %v - %v, %v", tc.name, nb, na, err)
		}
		switch pub := cert.PublicKey.(type) {
		case *rsa.PublicKey:
			want := map[testpki.KeyType]int{testpki.RSA2048: 2048, testpki.RSA1024: 1024}[kt]
			if pub.N.BitLen() != want || pub.E != 65537 {
				t.Errorf("%s: RSA-%d e=%d for %s", tc.name, pub.N.BitLen(), pub.E, kt)
			}
		case *ecdsa.PublicKey:
			want := map[testpki.KeyType]int{testpki.P256: 256, testpki.P384: 384}[kt]
			if pub.Curve.Params().BitSize != want {
				t.Errorf("%s: curve %s for %s", tc.name, pub.Curve.Params().Name, kt)
			}
		}

		// The chain verifies at "now", and an expired card fails as expired.
		_, err = cert.Verify(x509.VerifyOptions{
			Roots:         p.Roots(),
			Intermediates: p.Intermediates(),
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		var inv x509.CertificateInvalidError
		switch {
		case days > 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case days < 0 && (!errors.As(err, &inv) || inv.Reason != x509.Expired):
			t.Errorf("%s: expired card verified with %v", tc.name, err)
		}
	}
	// The authentication certificate is for client authentication.
	if _, err := c.AuthCert.Verify(x509.VerifyOptions{Roots: p.Roots(), Intermediates: p.Intermediates(), CurrentTime: now.Add(-time.Hour),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil && days > 0 {
		t.Errorf("clientAuth: %v", err)
	}
}

func TestDefaultsAndNow(t *testing.T) {
	p := newPKI(t)
	before := time.Now()
	c, err := p.IssueCard(testpki.CardSpec{DaysLeft: 10})
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthCert.Subject.CommonName != "999000000001_TEST_CARDHOLDER" || c.Spec.KeyType != testpki.RSA2048 {
		t.Errorf("defaults: %q %s", c.AuthCert.Subject.CommonName, c.Spec.KeyType)
	}
	left := time.Until(c.AuthCert.NotAfter)
	if left > 10*24*time.Hour || left < 10*24*time.Hour-time.Since(before)-time.Second {
		t.Errorf("NotAfter in %v, want 10 days", left)
	}
}

func TestIssueCardRejects(t *testing.T) {
	p := newPKI(t)
	for name, spec := range map[string]testpki.CardSpec{
		"short UUID":   {UUID: "12345"},
		"letters":      {UUID: "12345678901a"},
		"underscore":   {Surname: "A_B"},
		"comma":        {Forename: "A,B"},
		"key type":     {KeyType: "rsa4096"},
		"key index":    {KeyIndex: -1},
		"huge key idx": {KeyIndex: 1 << 20},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.IssueCard(spec); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := testpki.ParseKeyType("dsa"); !errors.Is(err, testpki.ErrUnknownKeyType) {
		t.Errorf("ParseKeyType: %v", err)
	}
	if kt, err := testpki.ParseKeyType("p384"); err != nil || kt != testpki.P384 {
		t.Errorf("ParseKeyType(p384) = %v, %v", kt, err)
	}
}

func TestKeyCache(t *testing.T) {
	var wg sync.WaitGroup
	keys := make([]any, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := testpki.Key(testpki.P256, 7)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatal("concurrent callers got different keys")
		}
	}
	other, _ := testpki.Key(testpki.P256, 8)
	if other == keys[0] {
		t.Error("different indexes share a key")
	}
	p := newPKI(t)
	a, _ := p.IssueCard(testpki.CardSpec{KeyType: testpki.P256})
	b, _ := p.IssueCard(testpki.CardSpec{KeyType: testpki.P256, KeyIndex: 1})
	if a.AuthKey == a.SignKey || a.AuthKey == b.AuthKey {
		t.Error("card keys are shared where they should differ")
	}
	if a.AuthCert.SerialNumber.Cmp(b.AuthCert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestWritePEM(t *testing.T) {
	p := newPKI(t)
	c, err := p.IssueCard(testpki.CardSpec{DaysLeft: 60, KeyType: testpki.P384})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.WritePEM(dir); err != nil {
		t.Fatal(err)
	}
	card := filepath.Join(dir, "card")
	if err := c.WritePEM(card); err != nil {
		t.Fatal(err)
	}
	readCerts := func(path string) []*x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []*x509.Certificate
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, cert)
		}
		return out
	}
	if got := readCerts(filepath.Join(dir, testpki.RootFile)); len(got) != 1 || !got[0].Equal(p.Root) {
		t.Error("root.pem")
	}
	if got := readCerts(filepath.Join(dir, testpki.ChainFile)); len(got) != 3 {
		t.Errorf("chain.pem has %d certificates", len(got))
	}
	if got := readCerts(filepath.Join(card, testpki.AuthFile)); len(got) != 1 || !got[0].Equal(c.AuthCert) {
		t.Error("authentication.pem")
	}
	kb, err := os.ReadFile(filepath.Join(card, testpki.SignKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(kb)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).Equal(c.SignKey) {
		t.Error("signing key differs")
	}
	if fi, err := os.Stat(filepath.Join(card, testpki.SignKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", fi.Mode(), err)
	}
}
