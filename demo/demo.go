// Package demo is cardagent's demo relying party.
//
// It is a small web site with a sign-in page that uses the JS client
// (web/cardagent-client) to reach the agent; it issues single-use
// challenges, verifies the returned token with agent/token's Verifier
// against the site's own origin, and shows who signed in. cmd/cardagent-demo
// is a thin main around it.
//
// Endpoints:
//
//	GET  /               the sign-in page (static/index.html)
//	GET  /app.js         the page's script; /messages.js, /signedcard.js, /style.css, /favicon.svg
//	GET  /cardagent.js   the JS client module (Config.Client)
//	POST /api/challenge  {} -> {"challenge", "origin", "expires_in"}
//	POST /api/verify     {"token": {...}, "challenge": "..."} -> {"holder", "certificate", "algorithm", "origin"}
//	                     or {"error": <reason code>, "message": <words>}
//	GET  /prescribe      the prescription-signing page (static/prescribe.html, prescribe.go)
//	POST /api/prescriptions, /api/prescriptions/verify (prescribe.go)
//
// Every response carries a Content-Security-Policy that allows nothing but
// the site itself and the loopback agent. POSTs must be JSON and, when the
// browser sends an Origin header, come from the site's origin.
//
// Pairing with the development virtual card: the card's certificates come
// from a test PKI that `cardagent-vcard insert` makes at start; with
// --certs-out DIR it writes DIR/root.pem and DIR/chain.pem, and
// `cardagent-demo --pki DIR` trusts exactly that PKI (FileTrust rereads the
// files when the virtual card is restarted with a new PKI).
//
// The JS client is not embedded (it lives outside this package's directory,
// in web/cardagent-client/, which //go:embed cannot reach): cardagent-demo
// reads it at start from --client PATH (default
// web/cardagent-client/cardagent.js, looked up from the working directory
// and the executable's directory upwards) and serves it from memory. The
// page loads it with a dynamic import("/cardagent.js"), so a missing client
// gives a message on the page rather than a dead page.
//
// The page (static/) never asks for the PIN: the agent prompts. It shows
// what the agent's status reports (holder, PIN tries left, blocked,
// certificate expiry within the agent's warning window, default 90 days)
// and each error code in words. Hooks for browser tests: <body data-state>
// is "ready", "working", "signed-in" or "error"; #message[data-code] is the
// last error code (agent protocol code or verifier reason); #holder is the
// signed-in name; #agent-status[data-agent] is "connected" or "missing";
// #card-status carries data-tries-left, data-blocked and data-days-left;
// #signed-card names the card that signed in (data-card-id, data-reader),
// found in the status by the verified certificate's SHA-256.
package demo

import (
	"bytes"
	"crypto/x509"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/token"
)

//go:embed static
var staticFiles embed.FS

// ChallengeTTL is how long an issued challenge stays valid: long enough to
// find the card and type a PIN, short enough that a stolen one is useless.
const ChallengeTTL = 2 * time.Minute

// ContentSecurityPolicy is sent with every response. The page talks to its
// own site and to the agent on loopback (WebSocket and the discovery GET),
// nothing else.
//
// There is no ws://[::1]:* source: CSP's host-source grammar has no IPv6
// literals, Chromium logs "contains an invalid source ... It will be
// ignored" for one and drops it, so a page with a CSP can reach the agent at
// 127.0.0.1 (or localhost) only, never at [::1].
const ContentSecurityPolicy = "default-src 'self'; " +
	"connect-src 'self' ws://127.0.0.1:* ws://localhost:* http://127.0.0.1:* http://localhost:*; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// maxBody bounds request bodies (a token with a chain is a few KiB).
const maxBody = token.MaxTokenSize + 1024

// Trust supplies the certificates tokens must chain to. It is asked on every
// verification, so an implementation may reload them (see FileTrust).
type Trust interface {
	Pools() (roots, intermediates *x509.CertPool, err error)
}

// StaticTrust is a Trust that never changes.
type StaticTrust struct{ Roots, Intermediates *x509.CertPool }

// Pools implements Trust.
func (t StaticTrust) Pools() (roots, intermediates *x509.CertPool, err error) {
	return t.Roots, t.Intermediates, nil
}

// Config configures a Site.
type Config struct {
	// Origin is the site's origin as the browser shows it
	// ("https://localhost:8443"): tokens must be bound to it.
	Origin string
	// Trust gives the trusted roots and intermediates. Required.
	Trust Trust
	// Challenges issues and consumes challenges (default: a token.MemoryStore).
	Challenges token.ChallengeStore
	// Client is the JS client module served at /cardagent.js. When nil the
	// page says the client is missing.
	Client []byte
	// Log receives one line per sign-in attempt (default: no logging).
	Log *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Site is the demo relying party; it is an http.Handler.
type Site struct {
	cfg    Config
	static fs.FS
	mux    *http.ServeMux
	rx     prescriptions
}

// New checks cfg and builds the site.
func New(cfg Config) (*Site, error) {
	if err := token.CheckOrigin(cfg.Origin); err != nil {
		return nil, err
	}
	if cfg.Trust == nil {
		return nil, errors.New("demo site: no trusted roots")
	}
	if cfg.Challenges == nil {
		cfg.Challenges = token.NewMemoryStore()
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	s := &Site{cfg: cfg, static: sub, mux: http.NewServeMux(), rx: prescriptions{items: map[string]prepared{}}}
	s.mux.HandleFunc("GET /{$}", s.file("index.html"))
	s.mux.HandleFunc("GET /prescribe", s.file("prescribe.html"))
	for _, name := range []string{"app.js", "messages.js", "signedcard.js", "style.css", "favicon.svg", "prescribe.js"} {
		s.mux.HandleFunc("GET /"+name, s.file(name))
	}
	s.mux.HandleFunc("GET /cardagent.js", s.client)
	s.mux.HandleFunc("POST /api/challenge", s.api(s.challenge))
	s.mux.HandleFunc("POST /api/verify", s.api(s.verify))
	s.mux.HandleFunc("POST /api/prescriptions", s.api(s.prepare))
	s.mux.HandleFunc("POST /api/prescriptions/verify", s.api(s.verifySigned))
	return s, nil
}

// ServeHTTP sets the security headers, then dispatches.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

func (s *Site) file(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := fs.ReadFile(s.static, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		serveBytes(w, r, name, data)
	}
}

// missingClient replaces the JS client when none was configured: importing
// it fails with a message the page shows.
const missingClient = `throw new Error("the cardagent JS client is not available: start cardagent-demo with --client PATH (web/cardagent-client/cardagent.js)");` + "\n"

func (s *Site) client(w http.ResponseWriter, r *http.Request) {
	data := s.cfg.Client
	if data == nil {
		data = []byte(missingClient)
	}
	serveBytes(w, r, "cardagent.js", data)
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func serveBytes(w http.ResponseWriter, r *http.Request, name string, data []byte) {
	w.Header().Set("Content-Type", contentTypes[path.Ext(name)])
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// apiError is the body of every failed API call.
type apiError struct {
	// Error is a stable code: a token.Reason, or bad_request,
	// unsupported_media_type, origin_not_allowed, unavailable.
	Error   string `json:"error"`
	Message string `json:"message"`
}

// api wraps a JSON endpoint: the request must be JSON from the site's own
// origin; the handler returns a status and a body.
func (s *Site) api(h func(r *http.Request, body []byte) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if o := r.Header.Get("Origin"); o != "" && o != s.cfg.Origin {
			writeJSON(w, http.StatusForbidden, apiError{"origin_not_allowed", fmt.Sprintf("This site only accepts requests from %s.", s.cfg.Origin)})
			return
		}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, apiError{"unsupported_media_type", "Send JSON (Content-Type: application/json)."})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{"bad_request", "The request is too large."})
			return
		}
		code, v := h(r, body)
		writeJSON(w, code, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ChallengeResponse is the body of POST /api/challenge.
type ChallengeResponse struct {
	Challenge string `json:"challenge"`
	// Origin is the origin tokens must be bound to: the page warns when it
	// was opened at another one (the signature would not verify).
	Origin    string `json:"origin"`
	ExpiresIn int    `json:"expires_in"` // seconds
}

func (s *Site) challenge(_ *http.Request, _ []byte) (int, any) {
	c, err := s.cfg.Challenges.Issue(ChallengeTTL)
	if err != nil {
		s.cfg.Log.Warn("issuing challenge", zap.Error(err))
		return http.StatusServiceUnavailable, apiError{"unavailable", "The site cannot start a sign-in right now; try again shortly."}
	}
	return http.StatusOK, ChallengeResponse{Challenge: c, Origin: s.cfg.Origin, ExpiresIn: int(ChallengeTTL / time.Second)}
}

// VerifyRequest is the body of POST /api/verify.
type VerifyRequest struct {
	Token     *token.Token `json:"token"`
	Challenge string       `json:"challenge"`
}

// VerifyResponse is the body of a successful POST /api/verify.
type VerifyResponse struct {
	Holder      certinfo.Holder  `json:"holder"`
	Certificate certinfo.Summary `json:"certificate"`
	Algorithm   string           `json:"algorithm"`
	Origin      string           `json:"origin"`
}

func (s *Site) verify(_ *http.Request, body []byte) (int, any) {
	var req VerifyRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Token == nil || req.Challenge == "" {
		return http.StatusBadRequest, apiError{"bad_request", "Send {\"token\": ..., \"challenge\": ...}."}
	}
	roots, inter, err := s.cfg.Trust.Pools()
	if err != nil {
		s.cfg.Log.Error("loading trusted certificates", zap.Error(err))
		return http.StatusServiceUnavailable, apiError{"unavailable", "The site cannot check certificates right now."}
	}
	v := &token.Verifier{Roots: roots, Intermediates: inter, Challenges: s.cfg.Challenges, Now: s.cfg.Now}
	res, err := v.Verify(req.Token, s.cfg.Origin, req.Challenge)
	if err != nil {
		reason := token.ReasonOf(err)
		if reason == "" {
			s.cfg.Log.Error("verifying token", zap.Error(err))
			return http.StatusServiceUnavailable, apiError{"unavailable", "The site cannot check sign-ins right now."}
		}
		s.cfg.Log.Info("sign-in rejected", zap.String("reason", string(reason)), zap.Error(err))
		return http.StatusUnauthorized, apiError{string(reason), ReasonMessage(reason)}
	}
	sum := certinfo.Summarise("", res.Certificate, s.cfg.Now())
	s.cfg.Log.Info("signed in", zap.String("holder", res.Holder.Name), zap.String("uuid", res.Holder.UUID),
		zap.String("algorithm", res.Algorithm), zap.Int("days_left", sum.DaysLeft))
	return http.StatusOK, VerifyResponse{Holder: res.Holder, Certificate: sum, Algorithm: res.Algorithm, Origin: res.Origin}
}

// ReasonMessage says a rejection reason in words for the person signing in.
func ReasonMessage(r token.Reason) string {
	switch r {
	case token.ReasonBadFormat, token.ReasonUnknownAlgorithm, token.ReasonAlgorithmMismatch:
		return "The sign-in answer from cardagent could not be read. Update cardagent and try again."
	case token.ReasonBadCertificate:
		return "Your card's certificate could not be read."
	case token.ReasonUnknownChallenge, token.ReasonChallengeExpired:
		return "The sign-in took too long or was not started here. Please try again."
	case token.ReasonChallengeReused:
		return "This sign-in was already used. Please try again."
	case token.ReasonExpired:
		return "Your card's certificate has expired. Ask your Registration Authority to renew it."
	case token.ReasonNotYetValid:
		return "Your card's certificate is not valid yet. Check this computer's date and time."
	case token.ReasonBadKeyUsage:
		return "Your card's certificate cannot be used to sign in."
	case token.ReasonUntrustedChain:
		return "Your card was not issued by an authority this site trusts."
	case token.ReasonBadSignature:
		return "The card's signature does not match this sign-in."
	case token.ReasonOriginMismatch:
		return "The card signed for a different web site than this one."
	}
	return "The sign-in was refused."
}
