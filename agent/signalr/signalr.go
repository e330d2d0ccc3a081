// Package signalr serves the classic ASP.NET SignalR 2 protocol.
//
// It serves long polling, with hubs: the part of the protocol that the
// SignalR 2 JavaScript clients (Microsoft's "signalr" 2.4 and
// "signalr-no-jquery") need to call a hub method and get its result.
// docs/credential-management.md describes the wire format; no Go library
// implements this (older) server protocol.
//
// The embedding handler does every security check (Host, Origin, OS user)
// and the CORS headers; Server.Handle then routes by path suffix under
// "/signalr", as the stock server does ("/signalr/negotiate" and
// "/signalr/signalr/negotiate" are the same endpoint).
//
// Browsers hold at most six connections per host, and a SignalR long-polling
// connection keeps one of them for its pending poll. Clients that open a new
// connection per call and never stop the old ones would stall the sixth call;
// so when an origin connects again, its older connections beyond
// Options.KeepPerOrigin are ended with a fatal poll reply ({"E":...}), which
// makes the client stop. A connection is never ended while it runs a call.
package signalr

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ProtocolVersion is the protocol version the server reports in negotiate.
const ProtocolVersion = "2.0"

// Defaults of Options.
const (
	DefaultConnectionTimeout       = 110 * time.Second
	DefaultDisconnectTimeout       = 30 * time.Second
	DefaultKeepAliveTimeout        = 20 * time.Second
	DefaultTransportConnectTimeout = 5 * time.Second
	DefaultMaxConnections          = 16
	DefaultKeepPerOrigin           = 2
	DefaultMaxSendBytes            = 1 << 20
	DefaultMaxInvocations          = 2
)

// maxSmallBody bounds the bodies of every request but send (poll and connect
// carry only "messageId" and "groupsToken").
const maxSmallBody = 4 << 10

// maxConnectionData bounds the connectionData parameter (a JSON list of hub names).
const maxConnectionData = 1 << 10

// Invocation is one hub method call from a client.
type Invocation struct {
	// Hub is the hub name as the client sent it (clients lower-case it).
	Hub string
	// Method is the method name as sent.
	Method string
	// Args are the call's arguments, each a JSON value.
	Args []json.RawMessage
	// Origin is the web origin that opened the connection.
	Origin string
	// ConnectionID identifies the connection in logs.
	ConnectionID string
}

// Hub runs hub methods. Invoke's result is sent as the call's "R"; an error
// is sent as the call's "E" (the stock server's generic message unless the
// error is a *HubError). ctx ends when the connection is aborted or the
// server closes.
type Hub interface {
	Invoke(ctx context.Context, inv Invocation) (any, error)
}

// HubError is an error whose message goes to the client as the call's "E".
type HubError struct{ Message string }

func (e *HubError) Error() string { return e.Message }

// HubSpec names a hub and its methods (for the /signalr/hubs script).
type HubSpec struct {
	Name    string
	Methods []string
}

// ErrUnknownMethod is returned by a Hub for a method it does not have.
var ErrUnknownMethod = errors.New("unknown hub method")

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Hubs are the hubs served; names are compared without case.
	Hubs []HubSpec
	// ConnectionTimeout is how long a poll is held when there is nothing to send.
	ConnectionTimeout time.Duration
	// DisconnectTimeout ends a connection that has had no request for this long.
	DisconnectTimeout time.Duration
	// KeepAliveTimeout and TransportConnectTimeout are reported in negotiate.
	KeepAliveTimeout        time.Duration
	TransportConnectTimeout time.Duration
	// MaxConnections caps the connections open at once; beyond it the oldest
	// idle connection is ended, and when none is idle negotiate gets 503.
	MaxConnections int
	// KeepPerOrigin is how many of an origin's connections are kept when it
	// connects again (the newest ones); the older ones are ended.
	KeepPerOrigin int
	// MaxSendBytes bounds a send request's body.
	MaxSendBytes int64
	// MaxInvocations bounds the calls running at once on one connection.
	MaxInvocations int
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Server is a SignalR long-polling endpoint. It is safe for concurrent use.
type Server struct {
	log  *zap.Logger
	hub  Hub
	opts Options
	hubs map[string]bool

	mu     sync.Mutex
	conns  map[string]*conn // by token
	seq    uint64           // connection order, for "oldest"
	closed bool
}

// New returns a Server calling hub.
func New(log *zap.Logger, hub Hub, opts Options) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ConnectionTimeout, DefaultConnectionTimeout)
	def(&opts.DisconnectTimeout, DefaultDisconnectTimeout)
	def(&opts.KeepAliveTimeout, DefaultKeepAliveTimeout)
	def(&opts.TransportConnectTimeout, DefaultTransportConnectTimeout)
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.KeepPerOrigin <= 0 {
		opts.KeepPerOrigin = DefaultKeepPerOrigin
	}
	if opts.MaxSendBytes <= 0 {
		opts.MaxSendBytes = DefaultMaxSendBytes
	}
	if opts.MaxInvocations <= 0 {
		opts.MaxInvocations = DefaultMaxInvocations
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{log: log, hub: hub, opts: opts, hubs: map[string]bool{}, conns: map[string]*conn{}}
	for _, h := range opts.Hubs {
		s.hubs[strings.ToLower(h.Name)] = true
	}
	return s
}

// conn is one SignalR connection. Its fields are guarded by Server.mu.
type conn struct {
	id, token, origin string
	seq               uint64
	connected         bool
	cursor            uint64
	poll              chan pollEnd // the pending poll's channel, nil when none
	inflight          int
	ending            string // non-empty: end with this message once idle
	idle              *time.Timer
	ctx               context.Context
	cancel            context.CancelFunc
}

// pollEnd is how a pending poll ends: "" is an empty reply, else a fatal error.
type pollEnd struct{ fatal string }

// Message texts sent to clients.
const (
	msgSuperseded = "This connection was replaced by a newer one from the same page."
	msgStopping   = "The agent is stopping."
	msgUnknown    = "The connection is not known (it ended, or the agent restarted)."
	msgIdle       = "The connection was idle for too long."
)

// Open reports how many connections are open (for status and tests).
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Full reports whether a new connection would have to wait: every
// connection slot is taken by a connection running a call.
func (s *Server) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || (len(s.conns) >= s.opts.MaxConnections && s.oldestIdleLocked() == nil)
}

// Close ends every connection: pending polls get a fatal reply and running
// calls' contexts are cancelled. Later requests get 503.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		s.endLocked(c, msgStopping)
	}
}

// Handle serves one request whose Origin the caller has already checked.
func (s *Server) Handle(w http.ResponseWriter, r *http.Request, origin string) {
	verb, ok := Route(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if verb == "hubs" {
		s.handleHubsScript(w, r)
		return
	}
	want := http.MethodPost
	switch verb {
	case "negotiate", "start", "ping":
		want = http.MethodGet
	}
	if r.Method != want {
		writeError(w, http.StatusMethodNotAllowed, "use "+want)
		return
	}
	q := r.URL.Query()
	switch verb {
	case "ping":
		writeJSON(w, map[string]string{"Response": "pong"})
		return
	case "negotiate":
		s.negotiate(w, q, origin)
		return
	}
	if t := q.Get("transport"); t != "longPolling" {
		writeError(w, http.StatusBadRequest, "only the longPolling transport is served")
		return
	}
	c, status := s.lookup(q.Get("connectionToken"), origin)
	if c == nil {
		s.unknown(w, r, verb, status)
		return
	}
	switch verb {
	case "connect":
		s.connect(w, r, c)
	case "start":
		s.start(w, c)
	case "poll", "reconnect":
		s.poll(w, r, c)
	case "send":
		s.send(w, r, c)
	case "abort":
		s.abort(w, c)
	}
}

// unknown answers a request whose connection is not (or no longer) known
// with status; for 200 (a token that may have been valid) the client is told
// in a way it acts on: a poll gets a fatal reply (the client stops), a send
// gets the call's error (the page's call fails instead of waiting forever).
func (s *Server) unknown(w http.ResponseWriter, r *http.Request, verb string, status int) {
	if status == http.StatusOK {
		switch verb {
		case "poll", "reconnect":
			writeJSON(w, persistent{C: "0", M: []json.RawMessage{}, E: msgUnknown})
			return
		case "send":
			body, ok := readBody(w, r, s.opts.MaxSendBytes)
			if !ok {
				return
			}
			if _, id, err := ParseSend(body); id != "" || err == nil {
				writeJSON(w, hubResult{I: id, E: msgUnknown})
				return
			}
			status = http.StatusBadRequest
		default:
			status = http.StatusForbidden
		}
	}
	writeError(w, status, "unknown connection")
}

// Route returns the SignalR verb a path names, by its last segment under
// "/signalr/" (as the stock server routes): negotiate, connect, reconnect,
// poll, send, start, abort, ping or hubs.
func Route(path string) (string, bool) {
	if !strings.HasPrefix(path, "/signalr/") {
		return "", false
	}
	verb := path[strings.LastIndexByte(path, '/')+1:]
	switch verb {
	case "negotiate", "connect", "reconnect", "poll", "send", "start", "abort", "ping", "hubs":
		return verb, true
	}
	return "", false
}

// negotiateReply is the negotiate answer, fields in the stock server's order.
type negotiateReply struct {
	URL                     string  `json:"Url"`
	ConnectionToken         string  `json:"ConnectionToken"`
	ConnectionID            string  `json:"ConnectionId"`
	KeepAliveTimeout        float64 `json:"KeepAliveTimeout"`
	DisconnectTimeout       float64 `json:"DisconnectTimeout"`
	ConnectionTimeout       float64 `json:"ConnectionTimeout"`
	TryWebSockets           bool    `json:"TryWebSockets"`
	ProtocolVersion         string  `json:"ProtocolVersion"`
	TransportConnectTimeout float64 `json:"TransportConnectTimeout"`
	LongPollDelay           float64 `json:"LongPollDelay"`
}

// persistent is a connect or poll reply: C the cursor, S on the initial
// connect, M the messages (always empty here), E a fatal error.
type persistent struct {
	C string            `json:"C"`
	S int               `json:"S,omitempty"`
	M []json.RawMessage `json:"M"`
	E string            `json:"E,omitempty"`
}

func (s *Server) negotiate(w http.ResponseWriter, q url.Values, origin string) {
	if err := s.checkConnectionData(q.Get("connectionData")); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p := q.Get("clientProtocol"); p != "" {
		if v, err := strconv.ParseFloat(p, 64); err != nil || v < 1.2 {
			writeError(w, http.StatusBadRequest, "unsupported clientProtocol")
			return
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, msgStopping)
		return
	}
	if len(s.conns) >= s.opts.MaxConnections {
		old := s.oldestIdleLocked()
		if old == nil {
			s.mu.Unlock()
			writeError(w, http.StatusServiceUnavailable, "too many connections")
			return
		}
		s.endLocked(old, msgSuperseded)
	}
	s.seq++
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{id: newID(), token: newToken(), origin: origin, seq: s.seq, ctx: ctx, cancel: cancel}
	s.conns[c.token] = c
	s.idleLocked(c)
	s.mu.Unlock()
	s.log.Debug("negotiated", zap.String("connection", c.id), zap.String("origin", origin))
	writeJSON(w, negotiateReply{
		URL:                     "/signalr",
		ConnectionToken:         c.token,
		ConnectionID:            c.id,
		KeepAliveTimeout:        s.opts.KeepAliveTimeout.Seconds(),
		DisconnectTimeout:       s.opts.DisconnectTimeout.Seconds(),
		ConnectionTimeout:       s.opts.ConnectionTimeout.Seconds(),
		TryWebSockets:           false,
		ProtocolVersion:         ProtocolVersion,
		TransportConnectTimeout: s.opts.TransportConnectTimeout.Seconds(),
		LongPollDelay:           0,
	})
}

// checkConnectionData accepts "" or a JSON list of {"name": hub} naming served hubs.
func (s *Server) checkConnectionData(v string) error {
	names, err := ParseConnectionData(v)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !s.hubs[strings.ToLower(n)] {
			return fmt.Errorf("'%s' Hub could not be resolved.", n)
		}
	}
	return nil
}

// ParseConnectionData reads the connectionData parameter: "" (no hubs) or
// a JSON list of {"name": hub}, at most 1 KiB.
func ParseConnectionData(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > maxConnectionData {
		return nil, errors.New("connectionData too long")
	}
	var hubs []struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	if err := dec.Decode(&hubs); err != nil || dec.More() || hubs == nil {
		return nil, errors.New("connectionData is not a JSON list of hubs")
	}
	names := make([]string, len(hubs))
	for i, h := range hubs {
		if h.Name == "" {
			return nil, errors.New("connectionData names a hub without a name")
		}
		names[i] = h.Name
	}
	return names, nil
}

// lookup finds the connection of token for origin. Without one it returns
// the status to answer: 200 for a poll (answered with a fatal reply), 403
// for a token of another origin, 400 for a missing token.
func (s *Server) lookup(token, origin string) (*conn, int) {
	if token == "" {
		return nil, http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, http.StatusServiceUnavailable
	}
	c, ok := s.conns[token]
	if !ok {
		return nil, http.StatusOK
	}
	if c.origin != origin {
		return nil, http.StatusForbidden
	}
	return c, 0
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request, c *conn) {
	if !readSmallBody(w, r) {
		return
	}
	s.mu.Lock()
	if c.connected {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "already connected")
		return
	}
	c.connected = true
	c.cursor++
	cursor := c.cursor
	s.supersedeLocked(c)
	s.idleLocked(c)
	s.mu.Unlock()
	writeJSON(w, persistent{C: cursorText(cursor), S: 1, M: []json.RawMessage{}})
}

func (s *Server) start(w http.ResponseWriter, c *conn) {
	s.mu.Lock()
	ok := c.connected
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, "not connected")
		return
	}
	writeJSON(w, map[string]string{"Response": "started"})
}

// poll holds the request until the connection has something to say, it is
// ended, or ConnectionTimeout passes.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, c *conn) {
	if !readSmallBody(w, r) {
		return
	}
	ch := make(chan pollEnd, 1)
	s.mu.Lock()
	if !c.connected {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "not connected")
		return
	}
	if c.poll != nil { // a newer poll replaces the pending one, which ends empty
		c.poll <- pollEnd{}
	}
	c.poll = ch
	s.busyLocked(c)
	s.mu.Unlock()

	t := time.NewTimer(s.opts.ConnectionTimeout)
	defer t.Stop()
	var end pollEnd
	select {
	case end = <-ch:
	case <-t.C:
	case <-r.Context().Done():
	}
	s.mu.Lock()
	if c.poll == ch {
		c.poll = nil
		if _, live := s.conns[c.token]; live {
			s.idleLocked(c)
		}
	}
	c.cursor++
	cursor := c.cursor
	s.mu.Unlock()
	if r.Context().Err() != nil {
		return
	}
	writeJSON(w, persistent{C: cursorText(cursor), M: []json.RawMessage{}, E: end.fatal})
}

// hubCall is the body of a send: {"H":hub,"M":method,"A":[args],"I":id}.
type hubCall struct {
	H string            `json:"H"`
	M string            `json:"M"`
	A []json.RawMessage `json:"A"`
	I json.RawMessage   `json:"I"`
}

// hubResult is a call's reply: I the call's id, R its result or E its error.
type hubResult struct {
	I string `json:"I"`
	R any    `json:"R,omitempty"`
	E string `json:"E,omitempty"`
}

// ParseSend reads a send request's form body: data= a JSON hub call.
func ParseSend(body []byte) (Invocation, string, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Invocation{}, "", fmt.Errorf("body is not a form: %w", err)
	}
	data := form["data"]
	if len(data) != 1 {
		return Invocation{}, "", errors.New("body must have exactly one data field")
	}
	var call hubCall
	dec := json.NewDecoder(strings.NewReader(data[0]))
	if err := dec.Decode(&call); err != nil {
		return Invocation{}, "", fmt.Errorf("data is not a hub call: %w", err)
	}
	if dec.More() {
		return Invocation{}, "", errors.New("data has trailing content")
	}
	id, err := callID(call.I)
	if err != nil {
		return Invocation{}, "", err
	}
	if call.H == "" || call.M == "" {
		return Invocation{}, id, errors.New("hub call without H or M")
	}
	return Invocation{Hub: call.H, Method: call.M, Args: call.A}, id, nil
}

// callID is the call's "I" as text: clients send a number, or a string.
func callID(raw json.RawMessage) (string, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if _, err := strconv.ParseUint(n.String(), 10, 32); err == nil {
			return n.String(), nil
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && len(s) > 0 && len(s) <= 32 {
		return s, nil
	}
	return "", errors.New("hub call without a valid I")
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, c *conn) {
	body, ok := readBody(w, r, s.opts.MaxSendBytes)
	if !ok {
		return
	}
	inv, id, err := ParseSend(body)
	if err != nil {
		if id == "" {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, hubResult{I: id, E: err.Error()})
		return
	}
	s.mu.Lock()
	if !c.connected || c.ending != "" {
		s.mu.Unlock()
		writeJSON(w, hubResult{I: id, E: "The connection has ended."})
		return
	}
	if c.inflight >= s.opts.MaxInvocations {
		s.mu.Unlock()
		writeJSON(w, hubResult{I: id, E: "Too many calls in progress on this connection."})
		return
	}
	c.inflight++
	s.busyLocked(c)
	ctx := c.ctx
	s.mu.Unlock()

	inv.Origin, inv.ConnectionID = c.origin, c.id
	res := hubResult{I: id}
	if !s.hubs[strings.ToLower(inv.Hub)] {
		res.E = fmt.Sprintf("'%s' Hub could not be resolved.", inv.Hub)
	} else {
		ictx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(r.Context(), cancel) // the page went away
		out, err := s.hub.Invoke(ictx, inv)
		stop()
		cancel()
		var he *HubError
		switch {
		case errors.Is(err, ErrUnknownMethod):
			res.E = fmt.Sprintf("'%s' method could not be resolved.", inv.Method)
		case errors.As(err, &he):
			res.E = he.Message
		case err != nil:
			s.log.Warn("hub method failed", zap.String("connection", c.id), zap.String("method", inv.Method), zap.Error(err))
			res.E = fmt.Sprintf("There was an error invoking Hub method '%s.%s'.", inv.Hub, inv.Method)
		default:
			res.R = out
		}
	}

	s.mu.Lock()
	c.inflight--
	if c.inflight == 0 && c.ending != "" {
		s.endLocked(c, c.ending)
	} else if _, live := s.conns[c.token]; live {
		s.idleLocked(c)
	}
	s.mu.Unlock()
	writeJSON(w, res)
}

func (s *Server) abort(w http.ResponseWriter, c *conn) {
	s.mu.Lock()
	s.removeLocked(c)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
}

// supersedeLocked ends c's origin's older connections beyond KeepPerOrigin.
func (s *Server) supersedeLocked(c *conn) {
	var same []*conn
	for _, o := range s.conns {
		if o != c && o.origin == c.origin && o.connected && o.ending == "" {
			same = append(same, o)
		}
	}
	for len(same) > s.opts.KeepPerOrigin-1 {
		oldest := 0
		for i, o := range same {
			if o.seq < same[oldest].seq {
				oldest = i
			}
		}
		s.endLocked(same[oldest], msgSuperseded)
		same = append(same[:oldest], same[oldest+1:]...)
	}
}

// oldestIdleLocked is the oldest connection with no call running.
func (s *Server) oldestIdleLocked() *conn {
	var old *conn
	for _, c := range s.conns {
		if c.inflight == 0 && (old == nil || c.seq < old.seq) {
			old = c
		}
	}
	return old
}

// endLocked ends c with a fatal message: at once when no call runs (its
// pending poll gets the message; without one, its next poll finds the
// connection unknown, which is fatal too), else once its calls are done.
func (s *Server) endLocked(c *conn, msg string) {
	if _, live := s.conns[c.token]; !live {
		return
	}
	if c.ending == "" {
		c.ending = msg
	}
	if s.closed {
		c.cancel()
	}
	if c.inflight > 0 {
		return
	}
	if c.poll != nil {
		c.poll <- pollEnd{fatal: c.ending}
		c.poll = nil
	}
	s.removeLocked(c)
}

func (s *Server) removeLocked(c *conn) {
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
	if c.poll != nil {
		c.poll <- pollEnd{fatal: msgStopping}
		c.poll = nil
	}
	c.cancel()
	delete(s.conns, c.token)
}

// idleLocked starts c's idle timer: a connection with no request for
// DisconnectTimeout is removed. No timer runs while no connection is open.
func (s *Server) idleLocked(c *conn) {
	if c.poll != nil || c.inflight > 0 {
		return
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.idle = time.AfterFunc(s.opts.DisconnectTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur, ok := s.conns[c.token]; ok && cur == c && c.poll == nil && c.inflight == 0 {
			s.log.Debug("connection idle: removed", zap.String("connection", c.id))
			s.removeLocked(c)
		}
	})
}

// busyLocked stops c's idle timer while a request is pending.
func (s *Server) busyLocked(c *conn) {
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
}

func cursorText(n uint64) string { return strconv.FormatUint(n, 10) }

func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// newID is a random version 4 UUID, as the stock server's connection IDs.
func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func readSmallBody(w http.ResponseWriter, r *http.Request) bool {
	_, ok := readBody(w, r, maxSmallBody)
	return ok
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "reading the request body failed")
		}
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
