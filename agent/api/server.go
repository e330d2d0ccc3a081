// Package api serves the loopback API that sign-in pages call.
//
// It has a discovery endpoint (GET /cardagent/v1/info, CORS for allowed
// origins only) and a WebSocket (GET /cardagent/v1/ws) carrying the JSON
// protocol of docs/protocol.md.
//
// The same-OS-user check of the connecting process runs as soon as a
// connection is accepted (agent/peer's Listener): another user's connection
// is closed before a byte of it is read. Every other check happens in one
// place, Server.ServeHTTP, before any handler runs: the Host header (DNS
// rebinding) and the exact Origin; it also refuses a request whose
// connection did not pass the peer check. Handlers depend on a narrow
// Backend interface, so tests pass a fake.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/peer"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/version"
)

// Paths of the API.
const (
	PathInfo = "/cardagent/v1/info"
	PathWS   = "/cardagent/v1/ws"
)

// DefaultPort is the first port tried; DefaultPortRange ports are tried in all (43800-43809).
const (
	DefaultPort      = 43800
	DefaultPortRange = 10
)

// Defaults of Options.
const (
	DefaultMaxConnections = 64
	// DefaultMaxHTTPConnections caps the open TCP connections of our own
	// user (WebSockets included); other users' are closed at once.
	DefaultMaxHTTPConnections = 128
	// DefaultMaxPendingChecks caps the peer checks in flight.
	DefaultMaxPendingChecks = 16
	DefaultMaxMessageBytes  = 16 << 10
	DefaultPromptsPerMinute = 6
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRequestTimeout   = 2 * time.Minute
)

// Backend is what the API needs from the card service (agent.CardService).
type Backend interface {
	// Status returns readers and cards from the service's cache.
	Status() wire.Status
	// Subscribe calls fn for every event until unsubscribe is called; fn must not block.
	Subscribe(fn func(wire.Event)) (unsubscribe func())
	// Certificates returns the certificates of the card used for sign-in:
	// card (a status card id) when not "", else the one usable card.
	Certificates(ctx context.Context, card string) (*wire.CardCertificates, error)
	// AuthenticateCard signs an origin-bound challenge with the card named
	// (a status card id; "" lets p choose when several are usable), asking
	// p for the PIN.
	AuthenticateCard(ctx context.Context, origin, challenge, card string, p prompt.Prompter) (*token.Token, error)
}

// Options configure a Server. Zero values take the defaults above.
type Options struct {
	// Ports are tried in order; the first free on both 127.0.0.1 and ::1 is
	// used. Default DefaultPort..DefaultPort+DefaultPortRange-1. Port 0 (tests)
	// takes any free port.
	Ports []int
	// AllowedOrigins are the serialized origins ("https://signin.example.nhs.uk")
	// a page must have exactly. None: every page is refused.
	AllowedOrigins []string
	// MaxConnections caps concurrent WebSocket connections; more get 503.
	MaxConnections int
	// MaxHTTPConnections caps the open TCP connections (of our own user,
	// WebSockets included); more get 503 and are closed.
	MaxHTTPConnections int
	// MaxPendingChecks caps the same-user checks in flight; while they are
	// all busy new connections wait in the kernel's backlog.
	MaxPendingChecks int
	// MaxMessageBytes is the largest message a client may send; larger closes with 1009.
	MaxMessageBytes int64
	// PromptsPerMinute is how many PIN prompts one origin may cause per minute.
	PromptsPerMinute int
	// HandshakeTimeout bounds reading a request's headers (and the WebSocket handshake).
	HandshakeTimeout time.Duration
	// RequestTimeout bounds one request, the PIN prompt included.
	RequestTimeout time.Duration
	// PromptTimeout is how long the PIN prompt stays open (reported in
	// hello; the card service applies it). Zero: not reported.
	PromptTimeout time.Duration
	// Version is the agent version reported by info and hello.
	Version string
	// SessionEnded says the card service sends session_ended (a removal
	// policy other than "none"); hello then lists the feature.
	SessionEnded bool
}

// DefaultPorts returns DefaultPort..DefaultPort+DefaultPortRange-1.
func DefaultPorts() []int {
	ports := make([]int, DefaultPortRange)
	for i := range ports {
		ports[i] = DefaultPort + i
	}
	return ports
}

// ErrNoPort is returned by Listen when every port of the range is taken.
var ErrNoPort = errors.New("no free port for the local API")

// Server is the loopback API server.
type Server struct {
	log      *zap.Logger
	backend  Backend
	prompter prompt.Prompter
	opts     Options
	allowed  map[string]bool
	limiter  *agent.PromptLimiter
	upgrader websocketUpgrader
	routes   map[string]route
	// checkPeer is peer.CheckAddrs in production; tests replace it.
	checkPeer peerChecker
	refusals  refusalLog

	mu        sync.Mutex
	listeners []net.Listener
	port      int
	hosts     map[string]bool
	ctx       context.Context
	closing   bool
	conns     map[*wsConn]struct{}
	wg        sync.WaitGroup // WebSocket connections
}

// route is one path: its handler per method.
type route map[string]func(w http.ResponseWriter, r *http.Request, origin string)

// New checks opts and returns a Server. p may be nil: authenticate then
// fails with prompt_unavailable while everything else works.
func New(log *zap.Logger, backend Backend, p prompt.Prompter, opts Options) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if backend == nil {
		return nil, errors.New("api: no backend")
	}
	if len(opts.Ports) == 0 {
		opts.Ports = DefaultPorts()
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxHTTPConnections <= 0 {
		opts.MaxHTTPConnections = DefaultMaxHTTPConnections
	}
	if opts.MaxPendingChecks <= 0 {
		opts.MaxPendingChecks = DefaultMaxPendingChecks
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.PromptsPerMinute <= 0 {
		opts.PromptsPerMinute = DefaultPromptsPerMinute
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.Version == "" {
		opts.Version = version.Version
	}
	s := &Server{
		log:       log,
		backend:   backend,
		prompter:  p,
		opts:      opts,
		allowed:   map[string]bool{},
		limiter:   agent.NewPromptLimiter(opts.PromptsPerMinute, time.Now),
		checkPeer: peer.CheckAddrs,
		conns:     map[*wsConn]struct{}{},
	}
	for _, o := range opts.AllowedOrigins {
		if err := ValidateOrigin(o); err != nil {
			return nil, err
		}
		s.allowed[o] = true
	}
	s.upgrader = newUpgrader(opts)
	s.routes = map[string]route{
		PathInfo: {http.MethodGet: s.handleInfo, http.MethodOptions: s.handlePreflight},
		PathWS:   {http.MethodGet: s.handleWS},
	}
	return s, nil
}

// ValidateOrigin checks that o is a serialized web origin as a browser sends
// it: scheme "https" or "http", a lower-case host, a port only when not the
// scheme's default, and nothing else (no path, not even "/").
func ValidateOrigin(o string) error {
	u, err := url.Parse(o)
	bad := func(why string) error { return fmt.Errorf("allowed origin %q: %s", o, why) }
	switch {
	case err != nil:
		return bad(err.Error())
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("the scheme must be https (or http)")
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return bad("want scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
		return bad("an origin has no path, query or fragment (not even a trailing slash)")
	case u.Host != strings.ToLower(u.Host):
		return bad("the host must be lower case, as browsers send it")
	case strings.HasSuffix(u.Hostname(), "."):
		return bad("the host must not end with a dot")
	case u.Scheme+"://"+u.Host != o:
		return bad("not in serialized form")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return bad("bad port")
		}
		if (u.Scheme == "https" && n == 443) || (u.Scheme == "http" && n == 80) {
			return bad("browsers omit the default port: leave it out")
		}
	}
	return nil
}

// Listen binds 127.0.0.1 and ::1 on the first port of the range free on
// both, and returns it. Serve calls it when it was not called before. Where
// the host has no IPv6 loopback only 127.0.0.1 is bound.
func (s *Server) Listen() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port != 0 {
		return s.port, nil
	}
	ls, port, err := ListenLoopback(s.log, s.opts.Ports)
	if err != nil {
		return 0, fmt.Errorf("%w (tried %v)", ErrNoPort, s.opts.Ports)
	}
	s.listeners, s.port, s.hosts = ls, port, LoopbackHosts(port)
	return port, nil
}

// Port is the bound port (0 before Listen).
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

type ctxKey struct{}

// peerChecker checks the process behind a TCP connection (peer.Checker).
type peerChecker = peer.Checker

// connInfo is attached to every TCP connection: checked says it came
// through the peer-checking listener.
type connInfo struct {
	checked bool
}

// Serve serves until ctx is cancelled, then closes every connection
// (WebSockets with 1001 "going away") and returns once all have ended.
func (s *Server) Serve(ctx context.Context) error {
	if _, err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("api: already serving")
	}
	s.ctx = ctx
	listeners := make([]net.Listener, len(s.listeners))
	for i, l := range s.listeners {
		listeners[i] = peer.NewListener(l, peer.ListenerOptions{
			Check:      s.checkPeer,
			MaxConns:   s.opts.MaxHTTPConnections,
			MaxPending: s.opts.MaxPendingChecks,
			Overflow:   writeBusy,
			Log:        s.log.Named("peer"),
		})
	}
	s.mu.Unlock()
	if !peer.Supported {
		s.log.Warn("this OS offers no cheap way to check which user a local connection comes from: any local process that passes the Origin check may use the API")
	}
	if len(s.allowed) == 0 {
		s.log.Warn("no allowed origins configured: every sign-in page will be refused")
	}

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		ReadTimeout:       s.opts.HandshakeTimeout,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(c context.Context, conn net.Conn) context.Context {
			_, checked := conn.(*peer.Conn)
			return context.WithValue(c, ctxKey{}, &connInfo{checked: checked})
		},
	}
	// A listener that fails ends the whole server.
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		g.Go(func() error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving on %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	<-gctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	cancel()
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.goingAway()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return g.Wait()
}

// ServeHTTP does every security check, in this order, before any handler:
// the connection passed the same-user check (at accept time), Host, Origin.
// Then it dispatches from the route table. Every refusal closes the
// connection (Connection: close).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")

	origin, reason := s.check(r)
	if reason != "" {
		s.logRefusal(r, reason)
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": string(wire.CodeNotAllowed)}})
		return
	}
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found"}})
		return
	}
	handler, ok := rt[r.Method]
	if !ok {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": map[string]string{"code": "method_not_allowed"}})
		return
	}
	handler(w, r, origin)
}

// check returns the request's origin, or why it is refused.
func (s *Server) check(r *http.Request) (origin, reason string) {
	s.mu.Lock()
	hosts := s.hosts
	s.mu.Unlock()
	// (a) The connection must have passed the same-user check when it was
	// accepted: a request that did not come through our listener is never
	// trusted.
	if ci, ok := r.Context().Value(ctxKey{}).(*connInfo); !ok || !ci.checked {
		return "", "peer"
	}
	// (b) DNS rebinding: the Host must name the loopback address and our port.
	if !hosts[r.Host] {
		return "", "host"
	}
	// (c) The Origin must be exactly one of the allowed ones: the serialized
	// origin compared as a string, no prefix, suffix or case folding. A
	// missing, repeated or "null" Origin is refused.
	vals := r.Header.Values("Origin")
	if len(vals) != 1 || !s.allowed[vals[0]] {
		return "", "origin"
	}
	return vals[0], ""
}

// writeJSON writes a reply; an error status also closes the connection.
func writeJSON(w http.ResponseWriter, code int, v any) {
	if code >= 400 {
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func cors(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Private-Network")
}

// handleInfo answers discovery: who we are and which protocol we speak.
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request, origin string) {
	cors(w, origin)
	writeJSON(w, http.StatusOK, Info{Name: "cardagent", Version: s.opts.Version, Protocol: Protocol})
}

// handlePreflight answers the CORS preflight of the info request, including
// Chrome's Private Network Access header, for allowed origins only (the
// checks in ServeHTTP already refused the others).
func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request, origin string) {
	if m := r.Header.Get("Access-Control-Request-Method"); m != http.MethodGet {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": string(wire.CodeNotAllowed)}})
		return
	}
	cors(w, origin)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Max-Age", "600")
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}
