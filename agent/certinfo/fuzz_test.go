package certinfo

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzSummarise: a certificate read from a card (any DER that parses) is
// summarised without a panic, and what is shown of it stays sane: valid
// UTF-8 names when the certificate's are, an NHS holder only from an NHS
// common name, days left consistent with the expiry flag.
func FuzzSummarise(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, key := range []string{"9a", "9c", "82", ""} {
			s := Summarise(key, c, now)
			if s.Usage == "" || s.KeyType == "" || len(s.SHA256) != 64 {
				t.Fatalf("summary %+v", s)
			}
			if s.Expired != (s.DaysLeft < 0) {
				t.Fatalf("%d days left but expired = %v", s.DaysLeft, s.Expired)
			}
		}
		h := HolderOf(c)
		cn := c.Subject.CommonName
		if utf8.ValidString(cn) && !utf8.ValidString(h.Name+h.Surname+h.Forename) {
			t.Fatalf("holder %q from common name %q is not valid UTF-8", h.Name, cn)
		}
		if h.UUID != "" && !strings.HasPrefix(cn, h.UUID+"_") {
			t.Fatalf("UUID %q not from common name %q", h.UUID, cn)
		}
	})
}

// FuzzHolderName drives the holder parsing with any common name.
func FuzzHolderName(f *testing.F) {
	f.Add("555253521108_RANDOM_USERQ")
	f.Add("555253521108_O'NEIL_MARY_ANNE")
	f.Add("555253521108_DUPONT_ÉMILE")
	f.Add("not an NHS name")
	f.Fuzz(func(t *testing.T, cn string) {
		c := &x509.Certificate{}
		c.Subject.CommonName = cn
		h := HolderOf(c)
		if utf8.ValidString(cn) && !utf8.ValidString(h.Name) {
			t.Fatalf("holder name %q from %q is not valid UTF-8", h.Name, cn)
		}
		if h.UUID == "" && h.Name != cn {
			t.Fatalf("non-NHS name %q became %q", cn, h.Name)
		}
	})
}
