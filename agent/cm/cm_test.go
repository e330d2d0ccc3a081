package cm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/signalr"
	"github.com/cardagent/cardagent/pcsc"
)

const goodOrigin = "https://rx.example.nhs.uk"

// fakeBackend signs with a software key, after asking the prompter, as the
// card service does; err (when set) is returned instead.
type fakeBackend struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	err  error

	mu    sync.Mutex
	calls []agent.SignRequest
}

func newFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "555253521108_TEST_SIGNER"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageContentCommitment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &fakeBackend{key: key, cert: cert}
}

func (b *fakeBackend) SignDocuments(ctx context.Context, req agent.SignRequest, p prompt.Prompter) (*agent.SignResult, error) {
	b.mu.Lock()
	b.calls = append(b.calls, req)
	b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	if p == nil {
		return nil, agent.ErrPromptUnavailable
	}
	pin, err := p.PIN(ctx, prompt.Request{Origin: req.Origin})
	if err != nil {
		return nil, err
	}
	prompt.Zero(pin)
	res := &agent.SignResult{Certificate: b.cert, Holder: "TEST SIGNER"}
	for _, d := range req.Documents {
		h := req.Hash.New()
		h.Write(d)
		sig, err := rsa.SignPKCS1v15(rand.Reader, b.key, req.Hash, h.Sum(nil))
		if err != nil {
			return nil, err
		}
		res.Signatures = append(res.Signatures, sig)
	}
	return res, nil
}

type countingPrompter struct {
	mu sync.Mutex
	n  int
}

func (p *countingPrompter) PIN(ctx context.Context, req prompt.Request) ([]byte, error) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return []byte("123456"), nil
}

func (p *countingPrompter) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

var fixedNow = time.Date(2023, 12, 19, 9, 8, 37, 656001000, time.UTC)

// serve starts a Server on a free port with a same-user check that accepts
// everyone (the real check has its own tests below).
func serve(t testing.TB, b Backend, p prompt.Prompter, opts Options) *Server {
	t.Helper()
	if opts.Ports == nil {
		opts.Ports = []int{0}
	}
	if opts.SigningOrigins == nil {
		opts.SigningOrigins = []string{goodOrigin}
	}
	if opts.CheckPeer == nil {
		opts.CheckPeer = func(us, peer netip.AddrPort) error { return nil }
	}
	opts.Now = func() time.Time { return fixedNow }
	s, err := New(zaptest.NewLogger(t), b, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func get(t *testing.T, method, rawURL string, header map[string]string, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, res.Header, string(b)}
}

func TestPortService(t *testing.T) {
	s := serve(t, newFakeBackend(t), &countingPrompter{}, Options{})
	base := fmt.Sprintf("http://localhost:%d", s.Port())
	o := map[string]string{"Origin": goodOrigin}

	r := get(t, "GET", base+PathGetPortNumber, o, "")
	want := fmt.Sprintf(`{"portData":{"portNumber":%d},"faultException":null}`, s.Port())
	if r.code != 200 || r.body != want || r.header.Get("Content-Type") != "application/json; charset=UTF-8" {
		t.Errorf("GetPortNumber: %d %q %s, want %s", r.code, r.header.Get("Content-Type"), r.body, want)
	}
	for k, v := range map[string]string{"Access-Control-Allow-Origin": goodOrigin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"} {
		if r.header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, r.header.Get(k), v)
		}
	}
	if r := get(t, "GET", base+PathConnectPRService, o, ""); r.code != 200 || r.body != `{"statusCode":"200"}` {
		t.Errorf("ConnectPRService: %d %s", r.code, r.body)
	}
	// The older library and Chrome's Private Network Access preflight.
	r = get(t, "OPTIONS", base+PathGetPortNumber, map[string]string{"Origin": goodOrigin, "Access-Control-Request-Method": "GET",
		"Access-Control-Request-Private-Network": "true"}, "")
	if r.code != 204 || r.header.Get("Access-Control-Allow-Private-Network") != "true" || r.header.Get("Access-Control-Allow-Origin") != goodOrigin ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", r.code, r.header)
	}
	if r := get(t, "OPTIONS", base+PathGetPortNumber, map[string]string{"Origin": goodOrigin, "Access-Control-Request-Method": "PUT"}, ""); r.code == 204 {
		t.Error("a preflight for PUT was allowed")
	}
}

// A caller the agent will not serve never gets 200 or a CORS header.
func TestRefusals(t *testing.T) {
	s := serve(t, newFakeBackend(t), &countingPrompter{}, Options{})
	port := s.Port()
	tests := []struct {
		name, host string
		header     map[string]string
	}{
		{"no Origin", "", nil},
		{"other origin", "", map[string]string{"Origin": "https://evil.example"}},
		{"origin with a trailing slash", "", map[string]string{"Origin": goodOrigin + "/"}},
		{"origin in another case", "", map[string]string{"Origin": "https://RX.example.nhs.uk"}},
		{"null origin", "", map[string]string{"Origin": "null"}},
		{"rebinding Host", "evil.example:" + fmt.Sprint(port), map[string]string{"Origin": goodOrigin}},
		{"Host without port", "localhost", map[string]string{"Origin": goodOrigin}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{PathGetPortNumber, PathConnectPRService, "/signalr/negotiate", "/signalr/ping"} {
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				if tc.host != "" {
					req.Host = tc.host
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode == 200 || res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Connection") != "close" && !res.Close {
					t.Errorf("%s: %d, ACAO %q, Connection %q", path, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Connection"))
				}
			}
		})
	}
	// An old page's <script src=".../signalr/hubs"> sends no Origin: served.
	if r := get(t, "GET", fmt.Sprintf("http://localhost:%d/signalr/hubs", port), nil, ""); r.code != 200 || !strings.Contains(r.body, "requestToSign") {
		t.Errorf("hubs script: %d", r.code)
	}
}

// Without a PIN prompt, or with every hub connection busy, the Port Service
// answers a fault (HTTP 200: the page fails at once) in both casings.
func TestPortServiceFault(t *testing.T) {
	s := serve(t, newFakeBackend(t), nil, Options{})
	r := get(t, "GET", fmt.Sprintf("http://localhost:%d%s", s.Port(), PathGetPortNumber), map[string]string{"Origin": goodOrigin}, "")
	var f map[string]any
	if err := json.Unmarshal([]byte(r.body), &f); err != nil || r.code != 200 {
		t.Fatalf("%d %s: %v", r.code, r.body, err)
	}
	lower, _ := f["faultException"].(map[string]any)
	upper, _ := f["FaultException"].(map[string]any)
	if lower["code"] != FaultCode || upper["Code"] != FaultCode || lower["message"] == "" || upper["Message"] != lower["message"] {
		t.Errorf("fault %s", r.body)
	}
	if _, ok := f["portData"]; ok {
		t.Errorf("a fault carries portData: %s", r.body)
	}
}

// signedInfo is an EPS-style payload.
var signedInfo = []byte(`<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><DigestValue>abc=</DigestValue></SignedInfo>`)

func requestArg(alg string, payloads ...[2]string) string {
	var ps []map[string]string
	for _, p := range payloads {
		ps = append(ps, map[string]string{"id": p[0], "payload": p[1]})
	}
	b, _ := json.Marshal(map[string]any{"algorithm": alg, "requestType": 1, "version": 1, "flags": 0, "payloads": ps})
	return base64.StdEncoding.EncodeToString(b)
}

// hubCall runs requestToSign over the SignalR endpoints as a client does.
func hubCall(t *testing.T, s *Server, arg any) string {
	t.Helper()
	base := fmt.Sprintf("http://localhost:%d/signalr", s.Port())
	o := map[string]string{"Origin": goodOrigin}
	cd := `[{"name":"signinghub"}]`
	r := get(t, "GET", base+"/negotiate?clientProtocol=2.1&connectionData="+url.QueryEscape(cd), o, "")
	var n struct{ ConnectionToken string }
	if err := json.Unmarshal([]byte(r.body), &n); err != nil {
		t.Fatalf("negotiate: %d %s", r.code, r.body)
	}
	q := "?transport=longPolling&clientProtocol=2.1&connectionToken=" + url.QueryEscape(n.ConnectionToken) + "&connectionData=" + url.QueryEscape(cd)
	get(t, "POST", base+"/connect"+q, o, "")
	get(t, "GET", base+"/start"+q, o, "")
	call, _ := json.Marshal(map[string]any{"H": "signinghub", "M": "requestToSign", "A": []any{arg}, "I": 0})
	r = get(t, "POST", base+"/send"+q, o, "data="+url.QueryEscape(string(call)))
	get(t, "POST", base+"/abort"+q, o, "")
	return r.body
}

func TestRequestToSign(t *testing.T) {
	b := newFakeBackend(t)
	p := &countingPrompter{}
	s := serve(t, b, p, Options{})
	payload := base64.StdEncoding.EncodeToString(signedInfo)
	out := hubCall(t, s, requestArg("RS1", [2]string{"a", payload}, [2]string{"b", payload}))
	var res struct {
		I string
		R Reply
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.I != "0" {
		t.Fatalf("send reply %s: %v", out, err)
	}
	r := res.R
	if r.StatusCode != 0 || r.StatusString != "SUCCESS" || r.Certificate != base64.StdEncoding.EncodeToString(b.cert.Raw) ||
		len(r.Signatures) != 2 || r.FailedSignatures == nil || len(r.FailedSignatures) != 0 || r.Timestamp != "2023-12-19T09:08:37.6560010Z" {
		t.Fatalf("reply %s", out)
	}
	sum := sha1.Sum(signedInfo)
	for i, sig := range r.Signatures {
		raw, err := base64.StdEncoding.DecodeString(sig.Signature)
		if err != nil || rsa.VerifyPKCS1v15(&b.key.PublicKey, crypto.SHA1, sum[:], raw) != nil {
			t.Errorf("signature %d does not verify over the decoded payload", i)
		}
	}
	if r.Signatures[0].ID != "a" || r.Signatures[1].ID != "b" {
		t.Errorf("ids %+v", r.Signatures)
	}
	if !strings.HasPrefix(out, `{"I":"0","R":{"certificate":`) || !strings.Contains(out, `"failed_signatures":[],"status_code":0,"status_string":"SUCCESS"`) {
		t.Errorf("reply layout %s", out)
	}
	if p.count() != 1 || len(b.calls) != 1 || b.calls[0].Hash != crypto.SHA1 || b.calls[0].Origin != goodOrigin || b.calls[0].Noun != "prescription" {
		t.Errorf("prompts %d, calls %+v", p.count(), b.calls)
	}

	out = hubCall(t, s, requestArg("RS256", [2]string{"x", payload}))
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.R.StatusCode != 0 {
		t.Fatalf("RS256: %s", out)
	}
	sum256 := sha256.Sum256(signedInfo)
	raw, _ := base64.StdEncoding.DecodeString(res.R.Signatures[0].Signature)
	if rsa.VerifyPKCS1v15(&b.key.PublicKey, crypto.SHA256, sum256[:], raw) != nil {
		t.Error("RS256 signature does not verify")
	}
}

// Refused requests get the documented status and never reach the card or the prompt.
func TestRequestToSignRefused(t *testing.T) {
	b := newFakeBackend(t)
	p := &countingPrompter{}
	s := serve(t, b, p, Options{MaxPayloads: 3, MaxPayloadBytes: 300})
	ok := base64.StdEncoding.EncodeToString(signedInfo)
	big := base64.StdEncoding.EncodeToString(make([]byte, 301))
	tests := []struct {
		name string
		arg  any
		code uint32
	}{
		{"not base64", "not base64!", StatusBadRequest},
		{"base64 of not JSON", base64.StdEncoding.EncodeToString([]byte("hello")), StatusBadRequest},
		{"not a string", 42, StatusBadRequest},
		{"no payloads", requestArg("RS1"), StatusBadRequest},
		{"payload not base64", requestArg("RS1", [2]string{"a", "%%%"}), StatusBadRequest},
		{"payload with CR LF", requestArg("RS1", [2]string{"a", ok[:4] + "\r\n" + ok[4:]}), StatusBadRequest},
		{"repeated id", requestArg("RS1", [2]string{"a", ok}, [2]string{"a", ok}), StatusBadRequest},
		{"empty id", requestArg("RS1", [2]string{"", ok}), StatusBadRequest},
		{"unknown algorithm", requestArg("ES256", [2]string{"a", ok}), StatusAlgorithm},
		{"too many payloads", requestArg("RS1", [2]string{"a", ok}, [2]string{"b", ok}, [2]string{"c", ok}, [2]string{"d", ok}), StatusTooLarge},
		{"payload too large", requestArg("RS1", [2]string{"a", big}), StatusTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := hubCall(t, s, tc.arg)
			var res struct{ R Reply }
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			r := res.R
			if r.StatusCode != tc.code || r.StatusString != "ERROR" || r.Certificate != "" || r.Signatures != nil || r.FailedSignatures != nil {
				t.Errorf("reply %s, want status 0x%08X", out, tc.code)
			}
			if tc.code == StatusBadRequest && r.Message != messageBadRequest {
				t.Errorf("message %q, want Credential Management's", r.Message)
			}
		})
	}
	if p.count() != 0 || len(b.calls) != 0 {
		t.Errorf("refused requests prompted %d times and reached the card %d times", p.count(), len(b.calls))
	}
}

// Card service errors become the documented status codes.
func TestStatusCodes(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString(signedInfo)
	tests := []struct {
		err  error
		code uint32
		msg  string
	}{
		{agent.Classify(pcsc.ErrNoCard), StatusNoCertificate, messageNoCertificate},
		{agent.ErrNoSigningCertificate, StatusNoCertificate, messageNoCertificate},
		{agent.Classify(prompt.ErrCancelled), StatusCancelled, "(0x43410001)"},
		{agent.Classify(&pcsc.AuthError{Retries: 2}), StatusWrongPIN, "Wrong PIN. 2 tries left before the card is blocked. Error Code: (0x43410002)"},
		{agent.Classify(pcsc.ErrPINBlocked), StatusPINBlocked, "(0x43410003)"},
		{agent.Classify(pcsc.ErrCardRemoved), StatusCardRemoved, "(0x43410004)"},
		{agent.ErrBusy, StatusBusy, "(0x43410005)"},
		{agent.ErrRateLimited, StatusRateLimited, "(0x43410006)"},
		{agent.ErrPromptUnavailable, StatusNoPrompt, "(0x43410007)"},
		{agent.ErrCardAmbiguous, StatusNoPrompt, "Several cards are inserted and no prompt here can offer the choice; take out the cards not in use. Error Code: (0x43410007)"},
		{agent.Classify(prompt.ErrTimeout), StatusTimeout, "(0x4341000A)"},
		{agent.Classify(pcsc.ErrPINFormat), StatusPINFormat, "(0x4341000B)"},
		{agent.Classify(pcsc.ErrUnsupportedCard), StatusUnsupportedCard, "(0x4341000C)"},
		{agent.Classify(pcsc.ErrServiceUnavailable), StatusServiceDown, "(0x4341000D)"},
		{agent.Classify(pcsc.ErrCardUnresponsive), StatusCardError, "(0x4341000E)"},
		{errors.New("anything"), StatusInternal, "(0x4341000F)"},
	}
	b := newFakeBackend(t)
	s := serve(t, b, &countingPrompter{}, Options{})
	for _, tc := range tests {
		b.err = tc.err
		out := hubCall(t, s, requestArg("RS1", [2]string{"a", payload}))
		var res struct{ R Reply }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.R.StatusCode != tc.code || !strings.Contains(res.R.Message, tc.msg) {
			t.Errorf("%v: status 0x%08X %q, want 0x%08X with %q", tc.err, res.R.StatusCode, res.R.Message, tc.code, tc.msg)
		}
	}
}

// The prompt rate limit applies per origin.
func TestRateLimit(t *testing.T) {
	p := &countingPrompter{}
	s := serve(t, newFakeBackend(t), p, Options{PromptsPerMinute: 2})
	payload := base64.StdEncoding.EncodeToString(signedInfo)
	var codes []uint32
	for range 3 {
		var res struct{ R Reply }
		_ = json.Unmarshal([]byte(hubCall(t, s, requestArg("RS1", [2]string{"a", payload}))), &res)
		codes = append(codes, res.R.StatusCode)
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != StatusRateLimited || p.count() != 2 {
		t.Errorf("codes %x, prompts %d: want two signed, the third rate limited without a prompt", codes, p.count())
	}
}

func TestParseRequestJWT(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString(signedInfo)
	claims, _ := json.Marshal(map[string]any{"algorithm": "RS256", "payloads": []map[string]string{{"id": "1", "payload": payload}}, "iat": 1})
	jwt := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
	req, err := ParseRequest(jwt, Limits{MaxPayloads: 5, MaxPayloadBytes: 1000})
	if err != nil || req.Hash != crypto.SHA256 || len(req.Payloads) != 1 || string(req.Payloads[0].Data) != string(signedInfo) {
		t.Fatalf("JWT form: %+v, %v", req, err)
	}
}

func TestDefaults(t *testing.T) {
	if fmt.Sprint(DefaultPorts) != "[43487 44213 45031 46478 48853]" {
		t.Errorf("Port Service ports %v", DefaultPorts)
	}
	if _, err := New(nil, newFakeBackend(t), nil, Options{SigningOrigins: []string{"https://x.example/"}}); err == nil {
		t.Error("an origin with a path was accepted")
	}
	var _ signalr.Hub = (*signingHub)(nil)
}

// With every port taken at start (an outgoing connection may hold one of
// the Port Service ports for a while), Serve keeps trying and binds the
// port once it is free; Listen alone says which ports it tried.
func TestBindRetry(t *testing.T) {
	holder, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := holder.Addr().(*net.TCPAddr).Port
	s, err := New(zaptest.NewLogger(t), newFakeBackend(t), &countingPrompter{}, Options{Ports: []int{port}, SigningOrigins: []string{goodOrigin},
		BindRetry: true, CheckPeer: func(us, peer netip.AddrPort) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(); !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("Listen with the port taken: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	time.Sleep(200 * time.Millisecond)
	holder.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Port() != port {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint never bound the freed port")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := get(t, "GET", fmt.Sprintf("http://localhost:%d%s", port, PathGetPortNumber), map[string]string{"Origin": goodOrigin}, ""); r.code != 200 {
		t.Errorf("after binding: %d", r.code)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v", err)
	}
}
