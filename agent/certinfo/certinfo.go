// Package certinfo turns a card's certificates into the facts people see.
//
// It says who holds the card (from the NHS subject profile), what each
// certificate is for, and how many days it has left.
package certinfo

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Holder is the card holder as named in an NHS certificate subject
// (CN=<12-digit UUID>_<SURNAME>_<FORENAME>, OU=People, O=nhs).
type Holder struct {
	// UUID is the holder's Spine directory (SDS) user ID, 12 digits.
	UUID     string `json:"uuid,omitempty"`
	Surname  string `json:"surname,omitempty"`
	Forename string `json:"forename,omitempty"`
	// Name is what to show: "Forename SURNAME", or the certificate's CN for other profiles.
	Name string `json:"name"`
}

var nhsCN = regexp.MustCompile(`^([0-9]{12})_([^_]+)_(.+)$`)

// HolderOf reads the holder from a certificate's subject. For subjects that do
// not follow the NHS profile it returns the common name as Name.
func HolderOf(c *x509.Certificate) Holder {
	cn := c.Subject.CommonName
	m := nhsCN.FindStringSubmatch(cn)
	if m == nil {
		return Holder{Name: cn}
	}
	h := Holder{UUID: m[1], Surname: m[2], Forename: strings.ReplaceAll(m[3], "_", " ")}
	h.Name = strings.TrimSpace(titleCase(h.Forename) + " " + h.Surname)
	return h
}

func titleCase(s string) string {
	words := strings.Fields(strings.ToLower(s))
	for i, w := range words {
		// The first letter, not the first byte: names may hold É, Ø, ...
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToTitle(r)) + w[n:]
	}
	return strings.Join(words, " ")
}

// Summary is one certificate as shown by `cardagent cards`, the API and the tray.
type Summary struct {
	Key       string    `json:"key"`
	Usage     string    `json:"usage"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// DaysLeft is whole days until NotAfter, rounded down; negative once expired.
	DaysLeft int    `json:"days_left"`
	Expired  bool   `json:"expired"`
	KeyType  string `json:"key_type"`
	SHA256   string `json:"sha256"`
}

// Summarise describes c as held under key reference key, as of now.
func Summarise(key string, c *x509.Certificate, now time.Time) Summary {
	sum := sha256.Sum256(c.Raw)
	return Summary{
		Key:       key,
		Usage:     Usage(key, c),
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    strings.ToUpper(c.SerialNumber.Text(16)),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		DaysLeft:  DaysLeft(c.NotAfter, now),
		Expired:   now.After(c.NotAfter),
		KeyType:   KeyType(c),
		SHA256:    hex.EncodeToString(sum[:]),
	}
}

// DaysLeft is the number of whole days from now until notAfter, rounded
// down: 0 on the last day, -1 the day after expiry.
func DaysLeft(notAfter, now time.Time) int {
	return int(math.Floor(notAfter.Sub(now).Hours() / 24))
}

// Usage names what a certificate is for: "authentication" (PIV 9A, the NHS
// authentication certificate), "signature" (9C, non-repudiation), or a
// description from its key usage.
func Usage(key string, c *x509.Certificate) string {
	switch key {
	case "9a":
		return "authentication"
	case "9c":
		return "signature"
	case "9d":
		return "key management"
	case "9e":
		return "card authentication"
	}
	switch {
	case c.KeyUsage&x509.KeyUsageContentCommitment != 0:
		return "signature"
	case c.KeyUsage&x509.KeyUsageDigitalSignature != 0:
		return "authentication"
	case c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) != 0:
		return "key management"
	}
	return "other"
}

// KeyType names the certificate's public key: "RSA-2048", "ECDSA P-256", ...
func KeyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

// NHSIssued reports whether c was issued by an NHS smartcard CA, by the
// issuer's name alone: O=nhs, OU=CA and a CN starting "NHS " (as in
// "CN=NHS Authentication G2, OU=CA, O=nhs, C=GB" and the older
// "CN=NHS Level 1D, OU=CA, O=nhs"). It names the card for people; it is no
// proof of anything (only a verified chain is).
func NHSIssued(c *x509.Certificate) bool {
	if c == nil {
		return false
	}
	is := c.Issuer
	has := func(vals []string, want string) bool {
		for _, v := range vals {
			if strings.EqualFold(v, want) {
				return true
			}
		}
		return false
	}
	return has(is.Organization, "nhs") && has(is.OrganizationalUnit, "CA") && strings.HasPrefix(strings.ToUpper(is.CommonName), "NHS ")
}
