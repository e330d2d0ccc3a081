package signalr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const origin = "https://rx.example.nhs.uk"

// fakeHub answers "echo" with its first argument, "fail" with an error,
// "hubError" with a HubError, and "block" only once released or cancelled.
type fakeHub struct {
	mu       sync.Mutex
	calls    []Invocation
	release  chan struct{}
	started  chan struct{}
	canceled chan struct{}
}

func newFakeHub() *fakeHub {
	return &fakeHub{release: make(chan struct{}), started: make(chan struct{}, 10), canceled: make(chan struct{}, 10)}
}

func (h *fakeHub) Invoke(ctx context.Context, inv Invocation) (any, error) {
	h.mu.Lock()
	h.calls = append(h.calls, inv)
	h.mu.Unlock()
	switch inv.Method {
	case "echo":
		return inv.Args[0], nil
	case "fail":
		return nil, errors.New("secret internal detail")
	case "hubError":
		return nil, &HubError{Message: "told"}
	case "block":
		h.started <- struct{}{}
		select {
		case <-h.release:
			return "released", nil
		case <-ctx.Done():
			h.canceled <- struct{}{}
			return nil, ctx.Err()
		}
	}
	return nil, ErrUnknownMethod
}

type testServer struct {
	*Server
	url string
	hub *fakeHub
}

func start(t *testing.T, opts Options) *testServer {
	t.Helper()
	hub := newFakeHub()
	if opts.Hubs == nil {
		opts.Hubs = []HubSpec{{Name: "signingHub", Methods: []string{"requestToSign"}}}
	}
	s := New(zaptest.NewLogger(t), hub, opts)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Handle(w, r, r.Header.Get("Origin"))
	}))
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return &testServer{Server: s, url: ts.URL, hub: hub}
}

type resp struct {
	code int
	body string
	ct   string
}

func (ts *testServer) do(t *testing.T, method, path string, q url.Values, body, org string) resp {
	t.Helper()
	u := ts.url + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if org == "" {
		org = origin
	}
	req.Header.Set("Origin", org)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header.Get("Content-Type")}
}

// connected negotiates, connects and starts a connection; it returns the
// query every later request of that connection carries.
func (ts *testServer) connected(t *testing.T, org string) url.Values {
	t.Helper()
	r := ts.do(t, "GET", "/signalr/negotiate", url.Values{"clientProtocol": {"2.1"}, "connectionData": {`[{"name":"signinghub"}]`}}, "", org)
	if r.code != 200 {
		t.Fatalf("negotiate: %d %s", r.code, r.body)
	}
	var n negotiateReply
	if err := json.Unmarshal([]byte(r.body), &n); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"transport": {"longPolling"}, "clientProtocol": {"2.1"}, "connectionToken": {n.ConnectionToken}, "connectionData": {`[{"name":"signinghub"}]`}}
	if r := ts.do(t, "POST", "/signalr/connect", q, "", org); r.code != 200 || !strings.Contains(r.body, `"S":1`) {
		t.Fatalf("connect: %d %s", r.code, r.body)
	}
	if r := ts.do(t, "GET", "/signalr/start", q, "", org); r.code != 200 || r.body != `{"Response":"started"}` {
		t.Fatalf("start: %d %s", r.code, r.body)
	}
	return q
}

func sendBody(method string, args ...any) string {
	b, _ := json.Marshal(map[string]any{"H": "signinghub", "M": method, "A": args, "I": 0})
	return "data=" + url.QueryEscape(string(b))
}

func TestNegotiate(t *testing.T) {
	ts := start(t, Options{})
	r := ts.do(t, "GET", "/signalr/negotiate", url.Values{"clientProtocol": {"2.1"}, "connectionData": {`[{"name":"signinghub"}]`}}, "", "")
	if r.code != 200 || r.ct != "application/json; charset=UTF-8" {
		t.Fatalf("negotiate: %d %q %s", r.code, r.ct, r.body)
	}
	// The stock server's fields, in its order, with its values.
	keys := []string{"Url", "ConnectionToken", "ConnectionId", "KeepAliveTimeout", "DisconnectTimeout", "ConnectionTimeout",
		"TryWebSockets", "ProtocolVersion", "TransportConnectTimeout", "LongPollDelay"}
	last := -1
	for _, k := range keys {
		i := strings.Index(r.body, `"`+k+`":`)
		if i <= last {
			t.Errorf("field %s missing or out of order in %s", k, r.body)
		}
		last = i
	}
	var n map[string]any
	if err := json.Unmarshal([]byte(r.body), &n); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Url": "/signalr", "KeepAliveTimeout": 20.0, "DisconnectTimeout": 30.0, "ConnectionTimeout": 110.0,
		"TryWebSockets": false, "ProtocolVersion": "2.0", "TransportConnectTimeout": 5.0, "LongPollDelay": 0.0}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%s = %v, want %v", k, n[k], v)
		}
	}
	if tok, _ := n["ConnectionToken"].(string); len(tok) < 40 {
		t.Errorf("connection token %q is too short to be unguessable", tok)
	}
}

func TestEndpoints(t *testing.T) {
	ts := start(t, Options{ConnectionTimeout: 50 * time.Millisecond})
	q := ts.connected(t, "")
	other := url.Values{}
	for k, v := range q {
		other[k] = v
	}
	other.Set("connectionToken", "forged")
	ws := url.Values{}
	for k, v := range q {
		ws[k] = v
	}
	ws.Set("transport", "webSockets")
	tests := []struct {
		name, method, path string
		q                  url.Values
		body, origin       string
		code               int
		body1              string // a substring the body must hold
	}{
		{"ping", "GET", "/signalr/ping", nil, "", "", 200, `{"Response":"pong"}`},
		{"nested path", "GET", "/signalr/signalr/ping", nil, "", "", 200, `"pong"`},
		{"unknown verb", "GET", "/signalr/what", nil, "", "", 404, ""},
		{"not under /signalr", "GET", "/x/negotiate", nil, "", "", 404, ""},
		{"negotiate by POST", "POST", "/signalr/negotiate", nil, "", "", 405, ""},
		{"unknown hub", "GET", "/signalr/negotiate", url.Values{"connectionData": {`[{"name":"otherhub"}]`}}, "", "", 400, "Hub could not be resolved"},
		{"bad connectionData", "GET", "/signalr/negotiate", url.Values{"connectionData": {`{`}}, "", "", 400, ""},
		{"old client protocol", "GET", "/signalr/negotiate", url.Values{"clientProtocol": {"1.0"}}, "", "", 400, ""},
		{"echo", "POST", "/signalr/send", q, sendBody("echo", "hello"), "", 200, `{"I":"0","R":"hello"}`},
		{"case of method kept", "POST", "/signalr/send", q, sendBody("nope"), "", 200, `"E":"'nope' method could not be resolved."`},
		{"generic error", "POST", "/signalr/send", q, sendBody("fail"), "", 200, `"E":"There was an error invoking Hub method 'signinghub.fail'."`},
		{"hub error", "POST", "/signalr/send", q, sendBody("hubError"), "", 200, `"E":"told"`},
		{"send without data", "POST", "/signalr/send", q, "x=1", "", 400, ""},
		{"send of unknown hub", "POST", "/signalr/send", q, "data=" + url.QueryEscape(`{"H":"x","M":"echo","A":[],"I":1}`), "", 200, `"E":"'x' Hub could not be resolved."`},
		{"send by GET", "GET", "/signalr/send", q, "", "", 405, ""},
		{"forged token, send", "POST", "/signalr/send", other, sendBody("echo", 1), "", 200, `{"I":"0","E":"The connection is not known`},
		{"forged token, start", "GET", "/signalr/start", other, "", "", 403, ""},
		{"forged token, poll", "POST", "/signalr/poll", other, "", "", 200, `"E":"The connection is not known`},
		{"token of another origin", "POST", "/signalr/send", q, sendBody("echo", 1), "https://evil.example", 403, ""},
		{"no token", "POST", "/signalr/poll", url.Values{"transport": {"longPolling"}}, "", "", 400, ""},
		{"other transport", "POST", "/signalr/connect", ws, "", "", 400, "longPolling"},
		{"poll times out empty", "POST", "/signalr/poll", q, "messageId=1", "", 200, `"M":[]`},
		{"connect twice", "POST", "/signalr/connect", q, "", "", 400, ""},
		{"small body too large", "POST", "/signalr/poll", q, strings.Repeat("a", maxSmallBody+1), "", 413, ""},
		{"hubs script", "GET", "/signalr/hubs", nil, "", "", 200, `requestToSign`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, tc.method, tc.path, tc.q, tc.body, tc.origin)
			if r.code != tc.code || !strings.Contains(r.body, tc.body1) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, r.code, r.body, tc.code, tc.body1)
			}
			if strings.Contains(r.body, "secret internal detail") {
				t.Error("an internal error reached the client")
			}
		})
	}
}

// A forged token must not resolve: the invocation never ran.
func TestForgedTokenRunsNothing(t *testing.T) {
	ts := start(t, Options{})
	q := ts.connected(t, "")
	q.Set("connectionToken", q.Get("connectionToken")+"x")
	ts.do(t, "POST", "/signalr/send", q, sendBody("echo", 1), "")
	if len(ts.hub.calls) != 0 {
		t.Fatalf("a forged token ran %d calls", len(ts.hub.calls))
	}
}

func TestSendTooLarge(t *testing.T) {
	ts := start(t, Options{MaxSendBytes: 1024})
	q := ts.connected(t, "")
	if r := ts.do(t, "POST", "/signalr/send", q, sendBody("echo", strings.Repeat("x", 2000)), ""); r.code != 413 {
		t.Fatalf("oversize send: %d %s", r.code, r.body)
	}
}

// pollAsync starts a poll and returns a channel with its reply.
func (ts *testServer) pollAsync(t *testing.T, q url.Values) <-chan resp {
	ch := make(chan resp, 1)
	go func() { ch <- ts.do(t, "POST", "/signalr/poll", q, "", "") }()
	return ch
}

func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", s.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitPolls(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := 0
		for _, c := range s.conns {
			if c.poll != nil {
				got++
			}
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d polls pending, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An origin's new connection ends its older ones beyond KeepPerOrigin: the
// pending poll gets a fatal reply at once; another origin's is untouched; a
// connection running a call is ended only once the call is done.
func TestSupersede(t *testing.T) {
	ts := start(t, Options{KeepPerOrigin: 1})
	a := ts.connected(t, "")
	other := ts.connected(t, "https://other.example.nhs.uk")
	pa := ts.pollAsync(t, a)
	waitPolls(t, ts.Server, 1)

	ts.connected(t, "")
	select {
	case r := <-pa:
		if r.code != 200 || !strings.Contains(r.body, `"E":"`+msgSuperseded) {
			t.Fatalf("superseded poll: %d %s", r.code, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the older connection's poll was not ended")
	}
	waitOpen(t, ts.Server, 2) // the other origin's and the new one
	if r := ts.do(t, "POST", "/signalr/send", other, sendBody("echo", "still"), "https://other.example.nhs.uk"); !strings.Contains(r.body, `"R":"still"`) {
		t.Errorf("the other origin's connection was ended: %s", r.body)
	}

	// A connection running a call survives until the call is done.
	b := ts.connected(t, "")
	done := make(chan resp, 1)
	go func() { done <- ts.do(t, "POST", "/signalr/send", b, sendBody("block"), "") }()
	<-ts.hub.started
	ts.connected(t, "")
	pb := ts.pollAsync(t, b)
	time.Sleep(50 * time.Millisecond)
	select {
	case r := <-pb:
		t.Fatalf("a connection running a call was ended: %s", r.body)
	default:
	}
	ts.hub.release <- struct{}{}
	if r := <-done; !strings.Contains(r.body, `"R":"released"`) {
		t.Fatalf("the running call's reply: %s", r.body)
	}
	select {
	case r := <-pb:
		if !strings.Contains(r.body, `"E":"`) {
			t.Fatalf("after its call, the superseded connection's poll: %s", r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the superseded connection was not ended after its call")
	}
}

func TestMaxConnections(t *testing.T) {
	ts := start(t, Options{MaxConnections: 2, KeepPerOrigin: 10})
	a := ts.connected(t, "")
	ts.connected(t, "https://b.example")
	// A third evicts the oldest idle one (a).
	ts.connected(t, "https://c.example")
	waitOpen(t, ts.Server, 2)
	if r := ts.do(t, "POST", "/signalr/poll", a, "", ""); !strings.Contains(r.body, `"E":"`) {
		t.Fatalf("the evicted connection's poll: %s", r.body)
	}
	// With every connection running a call, negotiate is refused.
	ts2 := start(t, Options{MaxConnections: 1})
	x := ts2.connected(t, "")
	done := make(chan resp, 1)
	go func() { done <- ts2.do(t, "POST", "/signalr/send", x, sendBody("block"), "") }()
	<-ts2.hub.started
	if !ts2.Full() {
		t.Error("Full() is false with every connection busy")
	}
	if r := ts2.do(t, "GET", "/signalr/negotiate", nil, "", ""); r.code != 503 {
		t.Errorf("negotiate at the cap with no idle connection: %d", r.code)
	}
	ts2.hub.release <- struct{}{}
	<-done
}

// A connection with no request for DisconnectTimeout is removed, and then
// no timer is left.
func TestIdleRemoval(t *testing.T) {
	ts := start(t, Options{DisconnectTimeout: 30 * time.Millisecond})
	ts.connected(t, "")
	ts.do(t, "GET", "/signalr/negotiate", nil, "", "") // never connected
	waitOpen(t, ts.Server, 0)
}

// Close ends pending polls with a fatal reply and cancels running calls.
func TestClose(t *testing.T) {
	ts := start(t, Options{})
	q := ts.connected(t, "")
	p := ts.pollAsync(t, q)
	waitPolls(t, ts.Server, 1)
	q2 := ts.connected(t, "https://b.example")
	done := make(chan resp, 1)
	go func() { done <- ts.do(t, "POST", "/signalr/send", q2, sendBody("block"), "https://b.example") }()
	<-ts.hub.started
	ts.Close()
	if r := <-p; !strings.Contains(r.body, `"E":"`+msgStopping) {
		t.Errorf("poll at close: %s", r.body)
	}
	select {
	case <-ts.hub.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the running call was not cancelled")
	}
	<-done
	if r := ts.do(t, "GET", "/signalr/negotiate", nil, "", ""); r.code != 503 {
		t.Errorf("negotiate after Close: %d", r.code)
	}
}

// The abort request removes the connection; its pending poll ends.
func TestAbort(t *testing.T) {
	ts := start(t, Options{})
	q := ts.connected(t, "")
	p := ts.pollAsync(t, q)
	waitPolls(t, ts.Server, 1)
	if r := ts.do(t, "POST", "/signalr/abort", q, "", ""); r.code != 200 || r.body != "" {
		t.Fatalf("abort: %d %q", r.code, r.body)
	}
	<-p
	waitOpen(t, ts.Server, 0)
}

func TestRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/signalr/negotiate": "negotiate", "/signalr/signalr/send": "send", "/signalr/hubs": "hubs",
		"/signalr/": "", "/signalr": "", "/other/poll": "", "/signalr/poll/x": "",
	} {
		got, ok := Route(path)
		if got != want || ok != (want != "") {
			t.Errorf("Route(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
}

func TestParseSend(t *testing.T) {
	enc := func(s string) string { return "data=" + url.QueryEscape(s) }
	tests := []struct {
		body, id, method string
		ok               bool
	}{
		{enc(`{"H":"signinghub","M":"requestToSign","A":["x"],"I":0}`), "0", "requestToSign", true},
		{enc(`{"H":"h","M":"m","A":[],"I":"7"}`), "7", "m", true},
		{enc(`{"H":"h","M":"m","A":[],"I":-1}`), "", "", false},
		{enc(`{"H":"h","M":"m","A":[],"I":1.5}`), "", "", false},
		{enc(`{"H":"h","M":"m","A":[]}`), "", "", false},
		{enc(`{"H":"","M":"m","A":[],"I":3}`), "3", "", false},
		{enc(`{"H":"h","M":"m","A":[],"I":0} {}`), "", "", false},
		{enc(`not json`), "", "", false},
		{"data=a&data=b", "", "", false},
		{"", "", "", false},
		{"%zz", "", "", false},
	}
	for _, tc := range tests {
		inv, id, err := ParseSend([]byte(tc.body))
		if (err == nil) != tc.ok || id != tc.id || (tc.ok && inv.Method != tc.method) {
			t.Errorf("ParseSend(%q) = %+v, %q, %v", tc.body, inv, id, err)
		}
	}
}

func TestParseConnectionData(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"[]", []string{}, true},
		{`[{"name":"signinghub"}]`, []string{"signinghub"}, true},
		{`[{"name":""}]`, nil, false},
		{`{}`, nil, false},
		{`null`, nil, false},
		{`[] []`, nil, false},
		{"[" + strings.Repeat(`{"name":"a"},`, 200) + `{"name":"a"}]`, nil, false},
	}
	for _, tc := range tests {
		got, err := ParseConnectionData(tc.in)
		if (err == nil) != tc.ok || (tc.ok && strings.Join(got, ",") != strings.Join(tc.want, ",")) {
			t.Errorf("ParseConnectionData(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// The generated proxy script is valid JavaScript (node --check) and names
// nothing unescaped.
func TestHubsScript(t *testing.T) {
	ts := start(t, Options{Hubs: []HubSpec{{Name: "signingHub", Methods: []string{"requestToSign", `bad"name</script>`}}}})
	r := ts.do(t, "GET", "/signalr/hubs", nil, "", "")
	if r.code != 200 || r.ct != "application/javascript; charset=UTF-8" {
		t.Fatalf("hubs: %d %q", r.code, r.ct)
	}
	if strings.Contains(r.body, "</script>") || strings.Contains(r.body, `bad"name`) {
		t.Errorf("a name reached the script unescaped:\n%s", r.body)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed (run scripts/setup)")
		}
		t.Skip("node is not installed")
	}
	f := filepath.Join(t.TempDir(), "hubs.js")
	if err := os.WriteFile(f, []byte(r.body), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
		t.Fatalf("node --check: %v\n%s", err, out)
	}
}
