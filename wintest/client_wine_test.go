//go:build wine && linux

package wintest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// agentClient talks to cardagent.exe's loopback API from Linux. addr is
// where the connection goes (the relay, a Windows process of the agent's
// session, or the agent itself); the Host header always names the agent's
// own port, as a browser's would.
type agentClient struct {
	addr string
	port int // the agent's port
	http *http.Client
}

func newAgentClient(addr string, port int) *agentClient {
	return &agentClient{addr: addr, port: port, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}}
}

func (a *agentClient) host() string { return "127.0.0.1:" + strconv.Itoa(a.port) }

// info is GET /cardagent/v1/info with an Origin.
func (a *agentClient) info(origin string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+a.addr+"/cardagent/v1/info", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Host = a.host()
	req.Header.Set("Origin", origin)
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// waitInfo waits until info answers 200 for origin.
func (a *agentClient) waitInfo(t *testing.T, origin string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, body, err := a.info(origin)
		if err == nil && resp.StatusCode == http.StatusOK {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("info: %v: %s", err, body)
			}
			return m
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("HTTP %d %s", resp.StatusCode, body)
			}
			t.Fatalf("the agent does not answer on %s (through %s): %v", a.host(), a.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wsConn is one WebSocket connection; events that arrive while waiting for
// a reply are kept for waitEvent.
type wsConn struct {
	c      *websocket.Conn
	next   int
	events []map[string]any
}

// dial opens a WebSocket connection; the caller closes it.
func (a *agentClient) dial(t *testing.T, origin string) *wsConn {
	t.Helper()
	h := http.Header{"Origin": {origin}, "Host": {a.host()}}
	c, resp, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial("ws://"+a.addr+"/cardagent/v1/ws", h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("WebSocket handshake: %v (HTTP %d)", err, code)
	}
	return &wsConn{c: c}
}

func (c *wsConn) read(t *testing.T, deadline time.Time) map[string]any {
	t.Helper()
	c.c.SetReadDeadline(deadline)
	_, data, err := c.c.ReadMessage()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %s", data)
	}
	return m
}

// call sends a request of type typ and returns its reply.
func (c *wsConn) call(t *testing.T, typ string, fields map[string]any, timeout time.Duration) map[string]any {
	t.Helper()
	c.next++
	id := "r" + strconv.Itoa(c.next)
	req := map[string]any{"id": id, "type": typ}
	for k, v := range fields {
		req[k] = v
	}
	if err := c.c.WriteJSON(req); err != nil {
		t.Fatalf("sending %s: %v", typ, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		m := c.read(t, deadline)
		if m["type"] == "event" {
			c.events = append(c.events, m)
			continue
		}
		if m["id"] == id {
			return m
		}
	}
}

// waitEvent returns the first event named name (earlier ones are dropped).
func (c *wsConn) waitEvent(t *testing.T, name string, timeout time.Duration) map[string]any {
	t.Helper()
	for len(c.events) > 0 {
		ev := c.events[0]
		c.events = c.events[1:]
		if ev["event"] == name {
			return ev
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		m := c.read(t, deadline)
		if m["type"] == "event" && m["event"] == name {
			return m
		}
	}
}

// errCode is a reply's error code ("" when it has none).
func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// get walks a decoded JSON value: get(m, "readers", 0, "card", "kind").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}
