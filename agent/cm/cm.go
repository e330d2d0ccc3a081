// Package cm is cardagent's NHS Credential Management compatible endpoint.
//
// It serves the NHS Port Service (GET /PRS/GetPortNumber, GET
// /PRS/ConnectPRService) and Credential Management's signing hub (a classic
// SignalR 2 hub, signingHub.requestToSign, over long polling), so
// prescribing pages written for Credential Management sign through cardagent
// unchanged. docs/credential-management.md documents the surface.
//
// Every request passes the same checks as the sign-in API, in one place
// (ServeHTTP) before any handler: the connecting process belongs to the
// agent's OS user (checked when the connection is accepted; another user's
// connection is closed without a reply), the Host names loopback and the
// bound port, and the Origin is exactly one of the signing origins. A caller
// the agent will not serve never gets HTTP 200: pages try the five Port
// Service ports at once and take the first 200, so on a shared host each
// user's agent answers only its own user.
package cm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/peer"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/signalr"
)

// DefaultPorts are the NHS Port Service ports, in the order the agent tries them.
var DefaultPorts = []int{43487, 44213, 45031, 46478, 48853}

// Defaults of Options.
const (
	DefaultMaxPayloads       = 50
	DefaultMaxPayloadBytes   = 16 << 10
	DefaultPromptsPerMinute  = 6
	DefaultMaxConnections    = 16
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultRequestTimeout    = 5 * time.Minute
	DefaultMaxConnsPerServer = 64
)

// Paths of the Port Service.
const (
	PathGetPortNumber     = "/PRS/GetPortNumber"
	PathConnectPRService  = "/PRS/ConnectPRService"
	hubName               = "signingHub"
	methodRequestToSign   = "requestToSign"
	defaultBindRetryDelay = time.Second
	maxBindRetryDelay     = time.Minute
)

// Backend is what the endpoint needs from the card service (agent.CardService).
type Backend interface {
	SignDocuments(ctx context.Context, req agent.SignRequest, p prompt.Prompter) (*agent.SignResult, error)
}

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Ports are tried in order; the first free on 127.0.0.1 and ::1 is bound.
	// Default DefaultPorts. Port 0 (tests) takes any free port.
	Ports []int
	// SigningOrigins are the serialized origins allowed to ask for
	// signatures. None: the endpoint refuses every page.
	SigningOrigins []string
	// MaxPayloads and MaxPayloadBytes bound one requestToSign (checked before the prompt).
	MaxPayloads     int
	MaxPayloadBytes int
	// PromptsPerMinute is how many PIN prompts one origin may cause per minute.
	PromptsPerMinute int
	// MaxConnections caps the SignalR connections open at once.
	MaxConnections int
	// HandshakeTimeout bounds reading a request's headers.
	HandshakeTimeout time.Duration
	// RequestTimeout bounds one requestToSign, PIN prompt included.
	RequestTimeout time.Duration
	// BindRetry makes Serve keep trying the ports when none is free at
	// first (they lie in Linux's ephemeral range: an outgoing connection
	// may hold one for a while). Listen alone never retries.
	BindRetry bool
	// CheckPeer is the same-user check; nil means peer.CheckAddrs.
	CheckPeer func(us, peer netip.AddrPort) error
	// Now is the clock for reply timestamps; nil means time.Now.
	Now func() time.Time
}

// Server is the Credential Management compatible endpoint.
type Server struct {
	log      *zap.Logger
	backend  Backend
	prompter prompt.Prompter
	opts     Options
	allowed  map[string]bool
	hub      *signalr.Server
	signer   *signingHub

	mu        sync.Mutex
	listeners []net.Listener
	port      int
	hosts     map[string]bool
	bindErr   error
	serving   bool
}

// New checks opts and returns a Server. p may be nil: the Port Service then
// answers with a fault, so pages fail at once instead of waiting.
func New(log *zap.Logger, backend Backend, p prompt.Prompter, opts Options) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if backend == nil {
		return nil, errors.New("cm: no backend")
	}
	if len(opts.Ports) == 0 {
		opts.Ports = DefaultPorts
	}
	if opts.MaxPayloads <= 0 {
		opts.MaxPayloads = DefaultMaxPayloads
	}
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if opts.PromptsPerMinute <= 0 {
		opts.PromptsPerMinute = DefaultPromptsPerMinute
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.CheckPeer == nil {
		opts.CheckPeer = peer.CheckAddrs
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{log: log, backend: backend, prompter: p, opts: opts, allowed: map[string]bool{}}
	for _, o := range opts.SigningOrigins {
		if err := api.ValidateOrigin(o); err != nil {
			return nil, err
		}
		s.allowed[o] = true
	}
	s.signer = newSigningHub(log.Named("sign"), backend, p, opts)
	// The largest send: the base64 of the JSON of MaxPayloads payloads,
	// URL-encoded in a form (at most 3 bytes per byte), with room for ids.
	maxSend := int64(opts.MaxPayloads)*int64(opts.MaxPayloadBytes+512)*3*4/3 + 4096
	s.hub = signalr.New(log.Named("signalr"), s.signer, signalr.Options{
		Hubs:           []signalr.HubSpec{{Name: hubName, Methods: []string{methodRequestToSign}}},
		MaxConnections: opts.MaxConnections,
		MaxSendBytes:   maxSend,
	})
	return s, nil
}

// ServerName is the Server header of every reply.
const ServerName = "cardagent"

// ErrNoPort is returned by Listen when every Port Service port is taken.
var ErrNoPort = errors.New("no Port Service port is free")

// Listen binds 127.0.0.1 and ::1 on the first port free on both, and returns
// it. Serve calls it when it was not called before.
func (s *Server) Listen() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port != 0 {
		return s.port, nil
	}
	ls, port, err := api.ListenLoopback(s.log, s.opts.Ports)
	if err != nil {
		s.bindErr = fmt.Errorf("%w (tried %v): %v", ErrNoPort, s.opts.Ports, err)
		return 0, s.bindErr
	}
	s.listeners, s.port, s.bindErr, s.hosts = ls, port, nil, api.LoopbackHosts(port)
	return port, nil
}

// Port is the bound port (0 before Listen, or while no port is free).
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Serve serves until ctx ends. With BindRetry, while no port is free it
// tries again after 1 s, 2 s, 4 s ... up to a minute between tries.
func (s *Server) Serve(ctx context.Context) error {
	delay := defaultBindRetryDelay
	for {
		_, err := s.Listen()
		if err == nil {
			break
		}
		if !s.opts.BindRetry {
			return err
		}
		s.log.Warn("Credential Management endpoint: no Port Service port is free; trying again", zap.Error(err), zap.Duration("in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxBindRetryDelay)
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("cm: already serving")
	}
	s.serving = true
	listeners := s.listeners
	s.mu.Unlock()
	if len(s.allowed) == 0 {
		s.log.Warn("no signing origins configured: every prescribing page will be refused")
	}
	s.log.Info("Credential Management endpoint listening", zap.Int("port", s.Port()), zap.Strings("signing_origins", s.opts.SigningOrigins))

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		// No ReadTimeout/WriteTimeout: polls are held for minutes by design.
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       zap.NewStdLog(s.log.Named("http")),
		BaseContext:    func(net.Listener) context.Context { return ctx },
	}
	g, gctx := errgroup.WithContext(ctx)
	if !peer.Supported {
		s.log.Warn("this OS offers no cheap way to check which user a local connection comes from: any local process that passes the Origin check may use the endpoint")
	}
	for _, l := range listeners {
		// Another user's connection is closed as soon as it is accepted,
		// before a byte is read: it never gets an answer, let alone a 200.
		pl := peer.NewListener(l, peer.ListenerOptions{
			Check:    peer.Checker(s.opts.CheckPeer),
			MaxConns: DefaultMaxConnsPerServer,
			Log:      s.log.Named("peer"),
		})
		g.Go(func() error {
			defer pl.Close()
			if err := srv.Serve(pl); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving on %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	<-gctx.Done()
	s.hub.Close() // pending polls end with a fatal reply: clients stop
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	cancel()
	return g.Wait()
}

// ServeHTTP checks the Host and the Origin, answers CORS preflights, then
// dispatches to the Port Service or the signing hub. (The OS user was
// checked when the connection was accepted.)
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Server", ServerName) // so doctor tells cardagent from another program on these ports
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("Referrer-Policy", "no-referrer")

	s.mu.Lock()
	hostOK := s.hosts[r.Host]
	s.mu.Unlock()
	origins := r.Header.Values("Origin")
	origin := ""
	if len(origins) == 1 {
		origin = origins[0]
	}
	_, signalrVerb := signalr.Route(r.URL.Path)
	isScript := signalrVerb && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/hubs")
	reason := ""
	switch {
	case !hostOK:
		reason = "host"
	case isScript && len(origins) == 0:
		// A <script> load sends no Origin; the script is the same for everyone.
	case len(origins) != 1 || !s.allowed[origin]:
		reason = "origin"
	}
	if reason != "" {
		s.log.Warn("request refused", zap.String("reason", reason), zap.String("host", truncate(r.Host, 100)),
			zap.String("origin", truncate(origin, 200)), zap.String("path", truncate(r.URL.Path, 100)))
		// No CORS header: the page sees a network error, never a 200.
		h.Set("Connection", "close")
		http.Error(w, "not allowed", http.StatusForbidden)
		return
	}
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		s.preflight(w, r)
		return
	}
	switch {
	case r.URL.Path == PathGetPortNumber && r.Method == http.MethodGet:
		s.getPortNumber(w)
	case r.URL.Path == PathConnectPRService && r.Method == http.MethodGet:
		writeJSON(w, connectReply{StatusCode: "200"})
	case signalrVerb:
		s.hub.Handle(w, r, origin)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// preflight answers a CORS preflight (and Chrome's Private Network Access
// preflight) for an allowed origin.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.Header.Get("Access-Control-Request-Method") {
	case http.MethodGet, http.MethodPost:
	default:
		http.Error(w, "method not allowed", http.StatusForbidden)
		return
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Requested-With")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Access-Control-Request-Private-Network")
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// OpenConnections is the number of SignalR connections open (for status and tests).
func (s *Server) OpenConnections() int { return s.hub.Open() }
