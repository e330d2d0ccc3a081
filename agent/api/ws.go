package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
)

const (
	outQueue     = 64 // replies and events waiting to be written, per connection
	maxInFlight  = 4  // concurrent certificates/authenticate requests per connection
	writeWait    = 10 * time.Second
	pingInterval = 30 * time.Second
	pongWait     = 75 * time.Second
	noClose      = -1 // close without sending a close frame (one was sent or received already)
	// closeWait is how long the agent waits, after its close frame, for the
	// client's close frame before it closes the TCP connection: a socket
	// closed with the client's data unread is reset, and browsers then
	// report 1006 instead of the agent's code.
	closeWait = time.Second
	// drainMax bounds what the agent reads and discards after its close
	// frame (the rest of an oversize message, messages in flight).
	drainMax = 8 << 20
)

type websocketUpgrader = *websocket.Upgrader

func newUpgrader(opts Options) *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: opts.HandshakeTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		// CheckOrigin returns true only because ServeHTTP has already compared
		// the Origin header exactly with the allowed origins (and checked Host
		// and the peer's user) before this handler could run. gorilla's own
		// default check (Origin host == Host) would refuse every sign-in page.
		CheckOrigin: func(*http.Request) bool { return true },
	}
}

// wsConn is one WebSocket client.
type wsConn struct {
	s      *Server
	ws     *websocket.Conn
	origin string
	log    *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	out    chan []byte
	slots  chan struct{}
	reqs   sync.WaitGroup
	closed chan struct{} // closed once the close frame (if any) is sent

	mu            sync.Mutex
	code          int
	reason        string
	codeWasSet    bool
	closeDeadline time.Time // set once the closing handshake began
}

// handleWS upgrades to a WebSocket once the connection cap allows it.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request, origin string) {
	s.mu.Lock()
	if s.closing || s.ctx == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": string(wire.CodeBusy)}})
		return
	}
	if len(s.conns) >= s.opts.MaxConnections {
		s.mu.Unlock()
		s.log.Warn("connection refused: too many connections", zap.Int("max", s.opts.MaxConnections), zap.String("origin", origin))
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": string(wire.CodeBusy)}})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	c := &wsConn{
		s: s, origin: origin, log: s.log.With(zap.String("origin", origin), zap.String("remote", r.RemoteAddr)),
		ctx: ctx, cancel: cancel,
		out: make(chan []byte, outQueue), slots: make(chan struct{}, maxInFlight), closed: make(chan struct{}),
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		cancel()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the client
	}
	// Clear the deadlines the HTTP server set for the handshake.
	_ = ws.NetConn().SetDeadline(time.Time{})
	c.ws = ws
	c.run()
}

// goingAway closes the connection because the agent is stopping.
func (c *wsConn) goingAway() { c.fail(websocket.CloseGoingAway, "agent stopping") }

// fail ends the connection with a close code (noClose: send none).
func (c *wsConn) fail(code int, reason string) {
	c.mu.Lock()
	if !c.codeWasSet {
		c.code, c.reason, c.codeWasSet = code, reason, true
	}
	c.mu.Unlock()
	c.cancel()
}

// startClose begins the closing handshake once the connection's context
// ends: it sends the close frame (unless one was sent or received already)
// and gives the reader closeWait to read the client's close frame. The TCP
// connection is closed by run once the reader has stopped.
func (c *wsConn) startClose() {
	defer close(c.closed)
	c.mu.Lock()
	code, reason, set := c.code, c.reason, c.codeWasSet
	c.mu.Unlock()
	if !set {
		code, reason = websocket.CloseGoingAway, "agent stopping"
	}
	deadline := time.Now().Add(closeWait)
	if code != noClose {
		if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline); err != nil {
			deadline = time.Now() // the client cannot get our close: do not wait for its own
		}
	}
	c.mu.Lock()
	c.closeDeadline = deadline
	_ = c.ws.NetConn().SetReadDeadline(deadline)
	c.mu.Unlock()
}

// extendDeadline gives the client pongWait more to send something, unless
// the connection is closing (startClose's deadline stays).
func (c *wsConn) extendDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeDeadline.IsZero() {
		_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(pongWait))
	}
}

// closing reports whether the connection is closing (no more requests are read).
func (c *wsConn) closing() bool { return c.ctx.Err() != nil }

func (c *wsConn) run() {
	c.log.Debug("client connected")
	context.AfterFunc(c.ctx, c.startClose)
	unsubscribe := c.s.backend.Subscribe(func(ev wire.Event) {
		if ev.Kind == wire.EventActivity { // the tray's alone: never another origin's business
			return
		}
		c.send(eventMessage{Type: "event", Event: ev})
	})
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		c.writer()
	}()
	c.reader()
	c.fail(noClose, "")
	unsubscribe()
	c.reqs.Wait()
	<-wdone
	<-c.closed
	_ = c.ws.Close()
	c.log.Debug("client disconnected")
}

// send queues a message; a client that does not read its messages is
// disconnected rather than allowed to hold memory.
func (c *wsConn) send(v any) {
	if c.ctx.Err() != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encoding message", zap.Error(err))
		return
	}
	select {
	case c.out <- b:
	default:
		c.log.Warn("client does not read its messages; disconnecting")
		c.fail(websocket.ClosePolicyViolation, "too slow")
	}
}

func (c *wsConn) writer() {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.fail(noClose, "")
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.fail(noClose, "")
				return
			}
		}
	}
}

// readMessage reads the next message, at most limit bytes of it. A larger
// message is reported with tooBig, its first limit bytes read; the rest is
// left in the message for drain.
func readMessage(ws *websocket.Conn, limit int64) (mt int, data []byte, r io.Reader, tooBig bool, err error) {
	mt, r, err = ws.NextReader()
	if err != nil {
		return 0, nil, nil, false, err
	}
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return 0, nil, nil, false, err
	}
	if int64(len(data)) > limit {
		return mt, nil, r, true, nil
	}
	return mt, data, r, false, nil
}

// reader reads requests until the connection fails or closes. Once it is
// closing, it goes on reading (and discarding, at most drainMax bytes, until
// startClose's deadline) so that the client's close frame is read and the
// TCP connection is closed with nothing unread: a socket closed with unread
// data is reset, and the client would never see the close code.
//
// The message limit is checked here, not with gorilla's SetReadLimit: that
// one answers 1009 and then refuses to read anything more, so the rest of
// the oversize message could never be drained.
func (c *wsConn) reader() {
	limit := c.s.opts.MaxMessageBytes
	c.extendDeadline()
	c.ws.SetPongHandler(func(string) error {
		c.extendDeadline()
		return nil
	})
	drained := int64(0)
	for {
		mt, data, r, tooBig, err := readMessage(c.ws, limit)
		if err != nil {
			c.fail(noClose, "")
			return
		}
		if c.closing() || tooBig {
			if tooBig && !c.closing() {
				c.log.Warn("message too big; connection closed", zap.Int64("limit", limit))
				c.fail(websocket.CloseMessageTooBig, "message too big")
			}
			n, err := io.Copy(io.Discard, io.LimitReader(r, drainMax-drained))
			drained += n + int64(len(data))
			if err != nil || drained >= drainMax {
				return
			}
			continue
		}
		c.extendDeadline()
		if mt != websocket.TextMessage {
			c.log.Info("binary message; connection closed")
			c.fail(websocket.CloseUnsupportedData, "text messages only")
			continue // read on until the client's close frame
		}
		req, err := parseRequest(data)
		if errors.Is(err, errMalformed) {
			c.log.Info("malformed message; connection closed", zap.Error(err))
			code := websocket.ClosePolicyViolation
			if errors.Is(err, errNotJSON) {
				code = websocket.CloseInvalidFramePayloadData
			}
			c.fail(code, "malformed message")
			continue // read on until the client's close frame
		}
		if err != nil {
			c.log.Info("request refused", zap.String("type", req.Type), zap.Error(err))
			c.send(errorReplyFor(header{req.ID, req.Type}, err))
			continue
		}
		c.handle(req)
	}
}

func (c *wsConn) handle(req request) {
	h := header{req.ID, req.Type}
	switch req.Type {
	case reqHello:
		c.send(helloReply{header: h, Name: "cardagent", Version: c.s.opts.Version, Protocol: Protocol, Features: c.s.opts.features(), Origin: c.origin,
			RequestTimeoutSeconds: int(c.s.opts.RequestTimeout / time.Second), PromptTimeoutSeconds: int(c.s.opts.PromptTimeout / time.Second)})
	case reqStatus:
		c.send(statusReply{header: h, Status: c.s.backend.Status()})
	case reqCertificates, reqAuthenticate:
		select {
		case c.slots <- struct{}{}:
		default:
			c.send(errorReplyFor(h, agent.NewError(wire.CodeBusy, "too many requests in progress on this connection", nil)))
			return
		}
		c.reqs.Add(1)
		go func() {
			defer c.reqs.Done()
			defer func() { <-c.slots }()
			ctx, cancel := context.WithTimeout(c.ctx, c.s.opts.RequestTimeout)
			defer cancel()
			if req.Type == reqCertificates {
				res, err := c.s.backend.Certificates(ctx, req.Card)
				if err != nil {
					c.send(errorReplyFor(h, err))
					return
				}
				c.send(certificatesReply{header: h, CardCertificates: res})
				return
			}
			var tok any
			var err error
			if req.Format == token.WebEIDFormat {
				wb, ok := c.s.backend.(webEIDBackend)
				if !ok {
					c.send(errorReplyFor(h, agent.NewError(wire.CodeBadRequest, "this agent makes no web-eid:1.0 tokens", nil)))
					return
				}
				tok, err = wb.AuthenticateWebEIDCard(ctx, c.origin, req.Challenge, req.Card, c.prompter())
			} else {
				tok, err = c.s.backend.AuthenticateCard(ctx, c.origin, req.Challenge, req.Card, c.prompter())
			}
			if err != nil {
				c.send(errorReplyFor(h, err))
				return
			}
			c.send(authenticateReply{header: h, Token: tok})
		}()
	}
}

// prompter is the server's prompter behind this origin's prompt rate limit.
func (c *wsConn) prompter() prompt.Prompter {
	return agent.RateLimited(c.s.prompter, func() bool { return c.s.limiter.Allow(c.origin) })
}
