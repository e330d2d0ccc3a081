package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// RevocationPolicy says what Verify does about revocation.
type RevocationPolicy string

// Policies. Under every policy but off a certificate found revoked is
// rejected (ReasonRevoked); they differ when its status cannot be learnt.
const (
	// RevocationOff: revocation is not checked (Result.Revocation says so).
	RevocationOff RevocationPolicy = "off"
	// RevocationBestEffort: a status that cannot be learnt (responder and CRL
	// unreachable, stale or unknown) is accepted, and the result says so.
	RevocationBestEffort RevocationPolicy = "best-effort"
	// RevocationRequired: only a certificate known to be good passes; any
	// other outcome is ReasonRevocationUnknown.
	RevocationRequired RevocationPolicy = "required"
)

// ParseRevocationPolicy parses "off", "best-effort" or "required".
func ParseRevocationPolicy(s string) (RevocationPolicy, error) {
	switch p := RevocationPolicy(s); p {
	case RevocationOff, RevocationBestEffort, RevocationRequired:
		return p, nil
	}
	return "", fmt.Errorf("revocation policy %q: want off, best-effort or required", s)
}

// Revocation statuses in a Result.
const (
	StatusGood        = "good"        // the responder or CRL says the certificate is not revoked
	StatusRevoked     = "revoked"     // (only in errors: Verify rejects it)
	StatusUnknown     = "unknown"     // the OCSP responder does not know the certificate
	StatusUnavailable = "unavailable" // no usable answer: unreachable, stale, malformed or none configured
	StatusNotChecked  = "not_checked" // policy off
)

// Revocation is what Verify learnt about the leaf's revocation.
type Revocation struct {
	Policy RevocationPolicy `json:"policy"`
	Status string           `json:"status"`
	// Source is "ocsp", "crl" or "" (not checked or unavailable).
	Source string `json:"source,omitempty"`
	// Detail says why the status is unknown or unavailable.
	Detail string `json:"detail,omitempty"`
	// NextUpdate is when the answer used stops being valid (zero if none).
	NextUpdate time.Time `json:"next_update,omitzero"`
}

// Revocation checking defaults.
const (
	DefaultRevocationTimeout = 5 * time.Second
	maxOCSPResponse          = 64 << 10
	maxCRL                   = 16 << 20
	ocspNonceBytes           = 32
)

// RevocationChecker learns a certificate's revocation status: OCSP first
// (with a nonce; the answer must echo it when it carries one), else the
// CRL of the certificate's CRL distribution point. Answers are cached until
// their NextUpdate; an answer past its NextUpdate (stale) is not used. Set
// the fields, then use it from any number of goroutines.
type RevocationChecker struct {
	// Policy; "" means RevocationBestEffort.
	Policy RevocationPolicy
	// Client fetches OCSP answers and CRLs (default: a client with Timeout).
	Client *http.Client
	// Timeout bounds each fetch (default DefaultRevocationTimeout).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	ocsp map[string]cachedStatus // by issuer key hash and serial
	crls map[string]*x509.RevocationList
}

type cachedStatus struct {
	status string
	until  time.Time
}

func (r *RevocationChecker) policy() RevocationPolicy {
	if r == nil {
		return RevocationOff
	}
	if r.Policy == "" {
		return RevocationBestEffort
	}
	return r.Policy
}

func (r *RevocationChecker) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RevocationChecker) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return &http.Client{Timeout: r.timeout()}
}

func (r *RevocationChecker) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultRevocationTimeout
}

// Check returns the revocation status of leaf, issued by issuer.
func (r *RevocationChecker) Check(ctx context.Context, leaf, issuer *x509.Certificate) Revocation {
	res := Revocation{Policy: r.policy()}
	if res.Policy == RevocationOff {
		res.Status = StatusNotChecked
		return res
	}
	var why []string
	for _, url := range leaf.OCSPServer {
		st, next, err := r.checkOCSP(ctx, url, leaf, issuer)
		if err == nil {
			res.Status, res.Source, res.NextUpdate = st, "ocsp", next
			if st == StatusUnknown {
				res.Detail = "the OCSP responder does not know the certificate"
				break // try the CRL
			}
			return res
		}
		why = append(why, "OCSP "+url+": "+err.Error())
	}
	for _, url := range leaf.CRLDistributionPoints {
		st, next, err := r.checkCRL(ctx, url, leaf, issuer)
		if err == nil {
			res.Status, res.Source, res.NextUpdate, res.Detail = st, "crl", next, ""
			return res
		}
		why = append(why, "CRL "+url+": "+err.Error())
	}
	if res.Status == StatusUnknown {
		return res
	}
	res.Status = StatusUnavailable
	if len(why) == 0 {
		why = append(why, "the certificate names no OCSP responder and no CRL")
	}
	res.Detail = strings.Join(why, "; ")
	return res
}

var oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// ocspRequestASN1 and the types below are RFC 6960's OCSPRequest with the
// request extensions (golang.org/x/crypto/ocsp writes none: no nonce).
type ocspRequestASN1 struct {
	TBS tbsRequestASN1
}

type tbsRequestASN1 struct {
	RequestList []asn1.RawValue
	Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

// tbsResponseASN1 reads the response extensions, which the ocsp package
// does not expose.
type tbsResponseASN1 struct {
	Version     int `asn1:"optional,default:0,explicit,tag:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   asn1.RawValue
	Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

// ocspRequestWithNonce builds the request for leaf with a fresh nonce.
func ocspRequestWithNonce(leaf, issuer *x509.Certificate) (req, nonce []byte, err error) {
	plain, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, nil, err
	}
	var inner struct {
		TBS struct {
			Version     int           `asn1:"explicit,tag:0,default:0,optional"`
			Requestor   asn1.RawValue `asn1:"explicit,tag:1,optional"`
			RequestList []asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(plain, &inner); err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, ocspNonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	val, err := asn1.Marshal(nonce) // RFC 8954: the value is an OCTET STRING
	if err != nil {
		return nil, nil, err
	}
	req, err = asn1.Marshal(ocspRequestASN1{TBS: tbsRequestASN1{
		RequestList: inner.TBS.RequestList,
		Extensions:  []pkix.Extension{{Id: oidOCSPNonce, Value: val}},
	}})
	return req, nonce, err
}

// responseNonce returns the nonce a response carries (in its response or
// single extensions), or nil.
func responseNonce(resp *ocsp.Response) ([]byte, error) {
	var tbs tbsResponseASN1
	if _, err := asn1.Unmarshal(resp.TBSResponseData, &tbs); err != nil {
		return nil, fmt.Errorf("response data: %w", err)
	}
	for _, e := range append(tbs.Extensions, resp.Extensions...) {
		if e.Id.Equal(oidOCSPNonce) {
			var n []byte
			if rest, err := asn1.Unmarshal(e.Value, &n); err != nil || len(rest) > 0 {
				return e.Value, nil // some responders put the bare bytes
			}
			return n, nil
		}
	}
	return nil, nil
}

func (r *RevocationChecker) checkOCSP(ctx context.Context, url string, leaf, issuer *x509.Certificate) (string, time.Time, error) {
	key := string(issuer.RawSubjectPublicKeyInfo) + "\x00" + leaf.SerialNumber.String()
	now := r.now()
	r.mu.Lock()
	c, ok := r.ocsp[key]
	r.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.status, c.until, nil
	}
	req, nonce, err := ocspRequestWithNonce(leaf, issuer)
	if err != nil {
		return "", time.Time{}, err
	}
	body, err := r.fetch(ctx, http.MethodPost, url, req, "application/ocsp-request", maxOCSPResponse)
	if err != nil {
		return "", time.Time{}, err
	}
	resp, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("bad answer: %w", err)
	}
	got, err := responseNonce(resp)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("bad answer: %w", err)
	}
	if got != nil && !bytes.Equal(got, nonce) {
		return "", time.Time{}, errors.New("the answer's nonce is not ours (a replayed answer)")
	}
	if resp.ThisUpdate.After(now.Add(5 * time.Minute)) {
		return "", time.Time{}, errors.New("the answer is dated in the future")
	}
	if resp.NextUpdate.IsZero() || !now.Before(resp.NextUpdate) {
		return "", time.Time{}, fmt.Errorf("stale answer (next update %s)", resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	var st string
	switch resp.Status {
	case ocsp.Good:
		st = StatusGood
	case ocsp.Revoked:
		st = StatusRevoked
	default:
		st = StatusUnknown
	}
	r.mu.Lock()
	if r.ocsp == nil {
		r.ocsp = map[string]cachedStatus{}
	}
	r.ocsp[key] = cachedStatus{status: st, until: resp.NextUpdate}
	r.mu.Unlock()
	return st, resp.NextUpdate, nil
}

func (r *RevocationChecker) checkCRL(ctx context.Context, url string, leaf, issuer *x509.Certificate) (string, time.Time, error) {
	now := r.now()
	r.mu.Lock()
	crl := r.crls[url]
	r.mu.Unlock()
	if crl == nil || !now.Before(crl.NextUpdate) {
		body, err := r.fetch(ctx, http.MethodGet, url, nil, "", maxCRL)
		if err != nil {
			return "", time.Time{}, err
		}
		if crl, err = x509.ParseRevocationList(body); err != nil {
			return "", time.Time{}, fmt.Errorf("bad CRL: %w", err)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return "", time.Time{}, fmt.Errorf("CRL not signed by the issuer: %w", err)
		}
		if crl.NextUpdate.IsZero() || !now.Before(crl.NextUpdate) {
			return "", time.Time{}, fmt.Errorf("stale CRL (next update %s)", crl.NextUpdate.UTC().Format(time.RFC3339))
		}
		r.mu.Lock()
		if r.crls == nil {
			r.crls = map[string]*x509.RevocationList{}
		}
		r.crls[url] = crl
		r.mu.Unlock()
	}
	if !bytes.Equal(crl.RawIssuer, leaf.RawIssuer) {
		return "", time.Time{}, errors.New("the CRL is another CA's")
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return StatusRevoked, crl.NextUpdate, nil
		}
	}
	return StatusGood, crl.NextUpdate, nil
}

func (r *RevocationChecker) fetch(ctx context.Context, method, url string, body []byte, contentType string, limit int64) ([]byte, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("unsupported URL %q", url)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return data, nil
}
