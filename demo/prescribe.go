package demo

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
)

// The prescription-signing page (prescribe.html) signs as NHS prescribing
// systems do through NHS Credential Management: the site prepares EPS-style
// payloads (base64 of a canonical XML-DSig SignedInfo, as the EPS $prepare
// endpoint returns them), the page has the agent sign them through the
// Credential Management compatible endpoint (the Port Service, then the
// signing hub's requestToSign), and the site verifies each signature as EPS
// does: RSASSA-PKCS1-v1_5 (SHA-1 for RS1, SHA-256 for RS256) over the
// SignedInfo bytes, with the returned certificate, which must chain to the
// trusted roots and be a signing (non-repudiation) certificate.
//
//	POST /api/prescriptions         {"count": 1-20, "algorithm": "RS1"|"RS256"} -> {"algorithm", "payloads": [{"id", "payload"}]}
//	POST /api/prescriptions/verify  {"algorithm", "certificate", "signatures": [{"id", "signature"}]} -> {"holder", "verified"}
//	                                or {"error": <reason>, "message": <words>}

// PrescriptionTTL is how long prepared payloads wait for their signatures.
const PrescriptionTTL = 5 * time.Minute

// maxPrepared bounds the payloads the site keeps waiting.
const maxPrepared = 1000

// PrepareRequest is the body of POST /api/prescriptions.
type PrepareRequest struct {
	Count     int    `json:"count"`
	Algorithm string `json:"algorithm"`
}

// Payload is one prepared item.
type Payload struct {
	ID      string `json:"id"`
	Payload string `json:"payload"`
}

// PrepareResponse is the body of a successful POST /api/prescriptions.
type PrepareResponse struct {
	Algorithm string    `json:"algorithm"`
	Payloads  []Payload `json:"payloads"`
}

// SignedRequest is the body of POST /api/prescriptions/verify: the
// requestToSign reply's certificate and signatures.
type SignedRequest struct {
	Algorithm   string `json:"algorithm"`
	Certificate string `json:"certificate"`
	Signatures  []struct {
		ID        string `json:"id"`
		Signature string `json:"signature"`
	} `json:"signatures"`
}

// SignedResponse is the body of a successful verification.
type SignedResponse struct {
	Holder   string `json:"holder"`
	Verified int    `json:"verified"`
}

type prepared struct {
	signedInfo []byte
	alg        string
	expires    time.Time
}

// prescriptions keeps prepared payloads until they are verified once.
type prescriptions struct {
	mu    sync.Mutex
	items map[string]prepared
}

// signedInfo is the exclusive-c14n SignedInfo of an XML-DSig signature over
// a document whose digest is digest, for alg (as EPS forms it).
func signedInfo(alg string, digest []byte) []byte {
	sigMethod, digMethod := "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"
	if alg == "RS256" {
		sigMethod, digMethod = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"
	}
	return []byte(`<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">` +
		`<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>` +
		`<SignatureMethod Algorithm="` + sigMethod + `"></SignatureMethod>` +
		`<Reference><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></Transform></Transforms>` +
		`<DigestMethod Algorithm="` + digMethod + `"></DigestMethod>` +
		`<DigestValue>` + base64.StdEncoding.EncodeToString(digest) + `</DigestValue></Reference></SignedInfo>`)
}

func hashOf(alg string) (crypto.Hash, bool) {
	switch alg {
	case "RS1":
		return crypto.SHA1, true
	case "RS256":
		return crypto.SHA256, true
	}
	return 0, false
}

func (s *Site) prepare(_ *http.Request, body []byte) (int, any) {
	var req PrepareRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Count < 1 || req.Count > 20 {
		return http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "count must be 1 to 20"}
	}
	h, ok := hashOf(req.Algorithm)
	if !ok {
		return http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "algorithm must be RS1 or RS256"}
	}
	now := s.cfg.Now()
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	for id, p := range s.rx.items {
		if now.After(p.expires) {
			delete(s.rx.items, id)
		}
	}
	if len(s.rx.items)+req.Count > maxPrepared {
		return http.StatusServiceUnavailable, map[string]string{"error": "busy", "message": "too many prescriptions waiting for signatures"}
	}
	res := PrepareResponse{Algorithm: req.Algorithm}
	for range req.Count {
		idb := make([]byte, 16)
		_, _ = rand.Read(idb)
		id := hex.EncodeToString(idb)
		// A stand-in for the prescription's canonical XML.
		doc := sha256.Sum256([]byte("demo prescription " + id))
		d := h.New()
		d.Write(doc[:])
		si := signedInfo(req.Algorithm, d.Sum(nil))
		s.rx.items[id] = prepared{signedInfo: si, alg: req.Algorithm, expires: now.Add(PrescriptionTTL)}
		res.Payloads = append(res.Payloads, Payload{ID: id, Payload: base64.StdEncoding.EncodeToString(si)})
	}
	return http.StatusOK, res
}

func (s *Site) verifySigned(_ *http.Request, body []byte) (int, any) {
	fail := func(reason, msg string) (int, any) {
		s.cfg.Log.Info("prescription signature refused", zap.String("reason", reason), zap.String("detail", msg))
		return http.StatusOK, map[string]string{"error": reason, "message": msg}
	}
	var req SignedRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Signatures) == 0 {
		return http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "want the reply's certificate and signatures"}
	}
	h, ok := hashOf(req.Algorithm)
	if !ok {
		return fail("algorithm", "algorithm must be RS1 or RS256")
	}
	der, err := base64.StdEncoding.Strict().DecodeString(req.Certificate)
	if err != nil {
		return fail("certificate", "the certificate is not base64 DER (EPS refuses PEM armour)")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fail("certificate", "the certificate cannot be parsed")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fail("certificate", "the certificate's key is not RSA")
	}
	if cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		return fail("certificate", "not a signing (non-repudiation) certificate")
	}
	roots, inter, err := s.cfg.Trust.Pools()
	if err != nil {
		return http.StatusInternalServerError, map[string]string{"error": "internal", "message": "trust store unavailable"}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fail("chain", "the certificate does not chain to the trusted roots")
	}
	// Every signature is checked before any payload is consumed; then all are.
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	now := s.cfg.Now()
	for _, sig := range req.Signatures {
		p, ok := s.rx.items[sig.ID]
		if !ok || now.After(p.expires) || p.alg != req.Algorithm {
			return fail("unknown_payload", fmt.Sprintf("no prescription %q is waiting for a %s signature", sig.ID, req.Algorithm))
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(sig.Signature)
		if err != nil {
			return fail("signature", "a signature is not base64")
		}
		d := h.New()
		d.Write(p.signedInfo)
		if err := rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), raw); err != nil {
			return fail("signature", fmt.Sprintf("the signature of %s does not verify", sig.ID))
		}
	}
	for _, sig := range req.Signatures {
		delete(s.rx.items, sig.ID)
	}
	holder := certinfo.HolderOf(cert)
	s.cfg.Log.Info("prescriptions signed", zap.String("holder", holder.Name), zap.Int("count", len(req.Signatures)), zap.String("algorithm", req.Algorithm))
	return http.StatusOK, SignedResponse{Holder: holder.Name, Verified: len(req.Signatures)}
}
