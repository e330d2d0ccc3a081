// Package testpki generates a TEST public-key infrastructure shaped like the
// NHS one.
//
// At run time it makes the CAs (Root Authority G2 issuing Authentication G2
// and Signing G2), and card certificates with the NHS smartcard profile:
//
//	subject  CN=<12-digit UUID>_<SURNAME>_<FORENAME>, OU=People, O=nhs
//	key      RSA-2048 e=65537 (or RSA-1024, ECDSA P-256, P-384), sha256WithRSA
//	critical KeyUsage (digitalSignature; nonRepudiation too on the signing certificate)
//	critical CertificatePolicies 1.2.826.0.1275.102.0.3.2.0
//	         Private Key Usage Period, CRL distribution point, OCSP and CA issuers URLs
//	         ExtKeyUsage clientAuth on the authentication certificate
//
// Every name carries "TEST" and every URL points at a .invalid host: nothing
// produced here can be mistaken for a live NHS certificate. Nothing is read
// from testdata: certificates are made fresh for each run, so the expiry
// cases (400, 60, 10 and -1 days left) are always relative to now.
//
// Key generation is the slow part, so keys come from a process-wide cache
// (see Key): a test binary generates each key once, however many PKIs and
// cards it makes.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"time"
)

// KeyType names a card key algorithm.
type KeyType string

// Key types a card can hold.
const (
	RSA2048 KeyType = "rsa2048"
	RSA1024 KeyType = "rsa1024" // legacy NHS cards
	P256    KeyType = "p256"
	P384    KeyType = "p384"
)

// KeyTypes lists every supported key type.
var KeyTypes = []KeyType{RSA2048, RSA1024, P256, P384}

// ExpiryCases are the days-left values the tests cover: comfortably valid,
// inside the 90-day renewal window, nearly expired, and expired.
var ExpiryCases = []int{400, 60, 10, -1}

// Object identifiers of the NHS profile.
var (
	// OIDNHSPolicy is the certificate policy seen on NHS smartcard certificates.
	OIDNHSPolicy = asn1.ObjectIdentifier{1, 2, 826, 0, 1275, 102, 0, 3, 2, 0}
	// OIDPrivateKeyUsagePeriod is the Private Key Usage Period extension (RFC 3280 4.2.1.4).
	OIDPrivateKeyUsagePeriod  = asn1.ObjectIdentifier{2, 5, 29, 16}
	oidExtCertificatePolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
)

// ErrUnknownKeyType is returned for a key type name that is not one of KeyTypes.
var ErrUnknownKeyType = errors.New("unknown key type")

var uuidRE = regexp.MustCompile(`^[0-9]{12}$`)

const (
	cardValidityYears = 2
	caYearsBack       = 10 // CA certificates: valid from 10 years ago ...
	caYearsAhead      = 20 // ... to 20 years ahead
)

// URLs written into certificates. The .invalid top-level domain never resolves.
const (
	CRLURL       = "http://crl.nhs-test.invalid/nhs-test-authentication-g2.crl"
	OCSPURL      = "http://ocsp.nhs-test.invalid/"
	CAIssuersURL = "http://ca.nhs-test.invalid/nhs-test-authentication-g2.crt"
)

// PKI is a test root with two issuing CAs, as in the NHS hierarchy.
type PKI struct {
	Root      *x509.Certificate // CN=NHS TEST Root Authority G2, OU=CA, O=nhs, C=GB
	RootKey   crypto.Signer
	AuthCA    *x509.Certificate // CN=NHS TEST Authentication G2, OU=CA, O=nhs, C=GB
	AuthCAKey crypto.Signer
	SignCA    *x509.Certificate // CN=NHS TEST Signing G2, OU=CA, O=nhs, C=GB
	SignCAKey crypto.Signer
}

// Cache indexes of the CA keys (card keys use 0, 1, 2, ... by CardSpec.KeyIndex).
const (
	caKeyIndexRoot = 1000 + iota
	caKeyIndexAuth
	caKeyIndexSign
)

// New creates the root and the two issuing CAs (RSA-2048, sha256WithRSA).
// The CA keys come from the process-wide cache; the certificates are new.
func New() (*PKI, error) {
	now := time.Now()
	p := &PKI{}
	var err error
	if p.RootKey, err = Key(RSA2048, caKeyIndexRoot); err != nil {
		return nil, err
	}
	if p.AuthCAKey, err = Key(RSA2048, caKeyIndexAuth); err != nil {
		return nil, err
	}
	if p.SignCAKey, err = Key(RSA2048, caKeyIndexSign); err != nil {
		return nil, err
	}
	rootTmpl := caTemplate("NHS TEST Root Authority G2", now, 1)
	if p.Root, err = create(rootTmpl, rootTmpl, p.RootKey.Public(), p.RootKey); err != nil {
		return nil, fmt.Errorf("creating root: %w", err)
	}
	if p.AuthCA, err = create(caTemplate("NHS TEST Authentication G2", now, 0), p.Root, p.AuthCAKey.Public(), p.RootKey); err != nil {
		return nil, fmt.Errorf("creating authentication CA: %w", err)
	}
	if p.SignCA, err = create(caTemplate("NHS TEST Signing G2", now, 0), p.Root, p.SignCAKey.Public(), p.RootKey); err != nil {
		return nil, fmt.Errorf("creating signing CA: %w", err)
	}
	return p, nil
}

// Roots returns a pool holding the test root only.
func (p *PKI) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// Intermediates returns a pool holding both issuing CAs.
func (p *PKI) Intermediates() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.AuthCA)
	pool.AddCert(p.SignCA)
	return pool
}

// Chain returns the CA certificates: the authentication CA, the signing CA and the root.
func (p *PKI) Chain() []*x509.Certificate {
	return []*x509.Certificate{p.AuthCA, p.SignCA, p.Root}
}

// CardSpec describes the holder and the certificates of one test card.
type CardSpec struct {
	// UUID is the 12-digit Spine (SDS) user ID; default "999000000001".
	UUID string
	// Surname and Forename go into the CN in upper case; defaults "TEST" and "CARDHOLDER".
	Surname, Forename string
	// DaysLeft sets NotAfter = Now + DaysLeft days, NotBefore = NotAfter - 2 years.
	// Negative values give an expired card; 0 means expiring now (use -1 for expired).
	DaysLeft int
	// KeyType of both card keys; default RSA2048.
	KeyType KeyType
	// KeyIndex picks the card's key pair from the cache: the authentication
	// key is Key(KeyType, 2*KeyIndex), the signing key Key(KeyType, 2*KeyIndex+1).
	// Cards with the same KeyType and KeyIndex share keys (cheap); give cards a
	// different index when a test needs them to differ.
	KeyIndex int
	// Now is the reference time for the validity dates; zero means time.Now().
	// A test with an injected clock passes the same time to get exact days left.
	Now time.Time
}

func (s CardSpec) withDefaults() CardSpec {
	if s.UUID == "" {
		s.UUID = "999000000001"
	}
	if s.Surname == "" {
		s.Surname = "TEST"
	}
	if s.Forename == "" {
		s.Forename = "CARDHOLDER"
	}
	if s.KeyType == "" {
		s.KeyType = RSA2048
	}
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	return s
}

// CommonName is the NHS-style CN: <UUID>_<SURNAME>_<FORENAME>.
func (s CardSpec) CommonName() string {
	s = s.withDefaults()
	return s.UUID + "_" + strings.ToUpper(s.Surname) + "_" + strings.ToUpper(s.Forename)
}

// CardCreds are the two certificates of a card with their private keys.
type CardCreds struct {
	Spec     CardSpec // with defaults filled in
	AuthCert *x509.Certificate
	AuthKey  crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
	SignCert *x509.Certificate
	SignKey  crypto.Signer
}

// IssueCard issues an authentication certificate (Authentication G2) and a
// signing certificate (Signing G2) for spec.
func (p *PKI) IssueCard(spec CardSpec) (*CardCreds, error) {
	spec = spec.withDefaults()
	if !uuidRE.MatchString(spec.UUID) {
		return nil, fmt.Errorf("issuing card: UUID %q is not 12 digits", spec.UUID)
	}
	if strings.ContainsAny(spec.Surname+spec.Forename, "_,=+") {
		return nil, errors.New("issuing card: names must not contain _ , = or +")
	}
	if spec.KeyIndex < 0 || spec.KeyIndex >= caKeyIndexRoot/2 {
		return nil, fmt.Errorf("issuing card: key index %d out of range", spec.KeyIndex)
	}
	authKey, err := Key(spec.KeyType, 2*spec.KeyIndex)
	if err != nil {
		return nil, fmt.Errorf("issuing card: %w", err)
	}
	signKey, err := Key(spec.KeyType, 2*spec.KeyIndex+1)
	if err != nil {
		return nil, fmt.Errorf("issuing card: %w", err)
	}
	c := &CardCreds{Spec: spec, AuthKey: authKey, SignKey: signKey}

	authTmpl, err := cardTemplate(spec, false)
	if err != nil {
		return nil, err
	}
	if c.AuthCert, err = create(authTmpl, p.AuthCA, authKey.Public(), p.AuthCAKey); err != nil {
		return nil, fmt.Errorf("issuing authentication certificate: %w", err)
	}
	signTmpl, err := cardTemplate(spec, true)
	if err != nil {
		return nil, err
	}
	if c.SignCert, err = create(signTmpl, p.SignCA, signKey.Public(), p.SignCAKey); err != nil {
		return nil, fmt.Errorf("issuing signing certificate: %w", err)
	}
	return c, nil
}

func caTemplate(cn string, now time.Time, pathLen int) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:         cn,
			OrganizationalUnit: []string{"CA"},
			Organization:       []string{"nhs"},
			Country:            []string{"GB"},
		},
		NotBefore:             now.AddDate(-caYearsBack, 0, 0),
		NotAfter:              now.AddDate(caYearsAhead, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
}

func cardTemplate(spec CardSpec, signing bool) (*x509.Certificate, error) {
	notAfter := spec.Now.Add(time.Duration(spec.DaysLeft) * 24 * time.Hour)
	notBefore := notAfter.AddDate(-cardValidityYears, 0, 0)
	policies, err := asn1.Marshal([]policyInformation{{Policy: OIDNHSPolicy}})
	if err != nil {
		return nil, err
	}
	pkup, err := asn1.Marshal(privateKeyUsagePeriod{NotBefore: notBefore.UTC(), NotAfter: notAfter.UTC()})
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:         spec.CommonName(),
			OrganizationalUnit: []string{"People"},
			Organization:       []string{"nhs"},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{CRLURL},
		OCSPServer:            []string{OCSPURL},
		IssuingCertificateURL: []string{CAIssuersURL},
		SignatureAlgorithm:    x509.SHA256WithRSA,
		ExtraExtensions: []pkix.Extension{
			{Id: oidExtCertificatePolicies, Critical: true, Value: policies},
			{Id: OIDPrivateKeyUsagePeriod, Value: pkup},
		},
	}
	if signing {
		t.KeyUsage |= x509.KeyUsageContentCommitment // nonRepudiation
		t.ExtKeyUsage = nil
		t.CRLDistributionPoints = []string{strings.Replace(CRLURL, "authentication", "signing", 1)}
		t.IssuingCertificateURL = []string{strings.Replace(CAIssuersURL, "authentication", "signing", 1)}
	}
	return t, nil
}

type policyInformation struct {
	Policy asn1.ObjectIdentifier
}

// privateKeyUsagePeriod is PrivateKeyUsagePeriod ::= SEQUENCE {
// notBefore [0] GeneralizedTime OPTIONAL, notAfter [1] GeneralizedTime OPTIONAL }.
type privateKeyUsagePeriod struct {
	NotBefore time.Time `asn1:"optional,generalized,tag:0"`
	NotAfter  time.Time `asn1:"optional,generalized,tag:1"`
}

// ParsePrivateKeyUsagePeriod decodes the Private Key Usage Period extension
// of cert (both dates zero when it has none).
func ParsePrivateKeyUsagePeriod(cert *x509.Certificate) (notBefore, notAfter time.Time, err error) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDPrivateKeyUsagePeriod) {
			var p privateKeyUsagePeriod
			rest, err := asn1.Unmarshal(e.Value, &p)
			if err != nil {
				return time.Time{}, time.Time{}, fmt.Errorf("parsing private key usage period: %w", err)
			}
			if len(rest) != 0 {
				return time.Time{}, time.Time{}, errors.New("parsing private key usage period: trailing data")
			}
			return p.NotBefore, p.NotAfter, nil
		}
	}
	return time.Time{}, time.Time{}, nil
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// The key cache. Go's rsa.GenerateKey cannot be made deterministic, so keys
// are random but generated once per process and key type/index.
type cacheKey struct {
	kt  KeyType
	idx int
}

type cacheEntry struct {
	once sync.Once
	key  crypto.Signer
	err  error
}

var keyCache sync.Map // cacheKey -> *cacheEntry

// Key returns the process-wide test key number idx of type kt, generating it
// on first use. Concurrent callers for the same key wait for one generation.
func Key(kt KeyType, idx int) (crypto.Signer, error) {
	v, _ := keyCache.LoadOrStore(cacheKey{kt, idx}, &cacheEntry{})
	e := v.(*cacheEntry)
	e.once.Do(func() { e.key, e.err = generate(kt) })
	return e.key, e.err
}

func generate(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("%w %q (want rsa2048, rsa1024, p256 or p384)", ErrUnknownKeyType, kt)
}

// ParseKeyType checks a key type name from a flag or a config file.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w %q (want rsa2048, rsa1024, p256 or p384)", ErrUnknownKeyType, s)
}
