package certinfo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func cert(t *testing.T, cn string, notAfter time.Time, ku x509.KeyUsage) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x1234AB),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{"People"}, Organization: []string{"nhs"}},
		NotBefore:    notAfter.Add(-730 * 24 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     ku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHolderOf(t *testing.T) {
	now := time.Now()
	tests := []struct {
		cn   string
		want Holder
	}{
		{"555253521108_RANDOM_USERQ", Holder{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", Name: "Userq RANDOM"}},
		{"123456789012_SMITH_MARY_ANNE", Holder{UUID: "123456789012", Surname: "SMITH", Forename: "MARY ANNE", Name: "Mary Anne SMITH"}},
		{"Test User", Holder{Name: "Test User"}},
		{"12345_SHORT_UUID", Holder{Name: "12345_SHORT_UUID"}},
	}
	for _, tt := range tests {
		t.Run(tt.cn, func(t *testing.T) {
			got := HolderOf(cert(t, tt.cn, now.Add(time.Hour), x509.KeyUsageDigitalSignature))
			if got != tt.want {
				t.Errorf("HolderOf(%q) = %+v, want %+v", tt.cn, got, tt.want)
			}
		})
	}
}

func TestDaysLeft(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		notAfter time.Time
		want     int
	}{
		{now.Add(400 * 24 * time.Hour), 400},
		{now.Add(60*24*time.Hour + time.Minute), 60},
		{now.Add(10*24*time.Hour - time.Minute), 9},
		{now.Add(time.Hour), 0},
		{now.Add(-time.Hour), -1},
		{now.Add(-24 * time.Hour), -1},
		{now.Add(-24*time.Hour - time.Second), -2},
	}
	for _, tt := range tests {
		if got := DaysLeft(tt.notAfter, now); got != tt.want {
			t.Errorf("DaysLeft(%v) = %d, want %d", tt.notAfter.Sub(now), got, tt.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	now := time.Now()
	c := cert(t, "555253521108_RANDOM_USERQ", now.Add(-25*time.Hour), x509.KeyUsageContentCommitment)
	s := Summarise("9c", c, now)
	if !s.Expired || s.DaysLeft != -2 {
		t.Errorf("expired cert: Expired=%v DaysLeft=%d", s.Expired, s.DaysLeft)
	}
	if s.Usage != "signature" || s.KeyType != "ECDSA P-256" || s.Serial != "1234AB" || len(s.SHA256) != 64 {
		t.Errorf("summary %+v", s)
	}
	if got := Usage("", c); got != "signature" {
		t.Errorf("Usage by key usage = %q", got)
	}
}
