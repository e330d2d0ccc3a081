//go:build wine && linux

package wintest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// rxOrigin is the prescribing page the system configuration allows to sign.
const rxOrigin = "https://rx.wintest.example"

// cmClient talks to the Credential Management endpoint of cardagent.exe from
// Linux, through addr (the relay, a Windows process of the agent's session),
// with a Host naming the endpoint's own port, as a browser's would.
type cmClient struct {
	addr string
	port int
	http *http.Client
}

func (c *cmClient) do(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost:" + strconv.Itoa(c.port)
	req.Header.Set("Origin", rxOrigin)
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// credentialManagement: the Port Service and the signing hub of the
// Windows build, signing with the virtual card through Wine's winscard, as
// a prescribing page calls them (through the relay: a Windows process of the
// agent's session); a Linux-side process, no process of that session, gets
// no answer at all.
func (s *session) credentialManagement(t *testing.T) {
	relay := s.w.start(t, "relay-cm", nil, "wine", s.w.win(s.b.relay), "-to", "127.0.0.1:"+strconv.Itoa(s.cmPort))
	defer relay.stop()
	c := &cmClient{addr: relay.firstLine(t, 20*time.Second), port: s.cmPort, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}

	resp, body := c.do(t, "GET", "/PRS/GetPortNumber", "")
	if want := fmt.Sprintf(`{"portData":{"portNumber":%d},"faultException":null}`, s.cmPort); resp.StatusCode != 200 || string(body) != want ||
		resp.Header.Get("Access-Control-Allow-Origin") != rxOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("GetPortNumber: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(s.cmPort)+"/PRS/GetPortNumber", nil)
	req.Header.Set("Origin", rxOrigin)
	if r, err := direct.Do(req); err == nil {
		r.Body.Close()
		t.Errorf("a Linux-side client got an answer: %d", r.StatusCode)
	}

	hubs := url.QueryEscape(`[{"name":"signinghub"}]`)
	_, body = c.do(t, "GET", "/signalr/negotiate?clientProtocol=2.1&connectionData="+hubs, "")
	var n struct{ ConnectionToken, ProtocolVersion string }
	if err := json.Unmarshal(body, &n); err != nil || n.ConnectionToken == "" || n.ProtocolVersion != "2.0" {
		t.Fatalf("negotiate: %s", body)
	}
	q := "?transport=longPolling&clientProtocol=2.1&connectionToken=" + url.QueryEscape(n.ConnectionToken) + "&connectionData=" + hubs
	if _, body = c.do(t, "POST", "/signalr/connect"+q, ""); !bytes.Contains(body, []byte(`"S":1`)) {
		t.Fatalf("connect: %s", body)
	}
	if _, body = c.do(t, "GET", "/signalr/start"+q, ""); string(body) != `{"Response":"started"}` {
		t.Fatalf("start: %s", body)
	}
	signedInfo := []byte(`<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><DigestValue>d2luZQ==</DigestValue></SignedInfo>`)
	arg, _ := json.Marshal(map[string]any{"algorithm": "RS256", "requestType": 1, "version": 1, "flags": 0, "payloads": []map[string]string{
		{"id": "a", "payload": base64.StdEncoding.EncodeToString(signedInfo)}, {"id": "b", "payload": base64.StdEncoding.EncodeToString(signedInfo)}}})
	call, _ := json.Marshal(map[string]any{"H": "signinghub", "M": "requestToSign", "A": []string{base64.StdEncoding.EncodeToString(arg)}, "I": 0})
	sigs := s.card.Signatures()
	start := time.Now()
	_, body = c.do(t, "POST", "/signalr/send"+q, "data="+url.QueryEscape(string(call)))
	t.Logf("requestToSign, 2 payloads: %.2f s", time.Since(start).Seconds())
	var res struct {
		I string
		R struct {
			Certificate string `json:"certificate"`
			Signatures  []struct{ ID, Signature string }
			StatusCode  uint32 `json:"status_code"`
			Message     string `json:"message"`
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || res.I != "0" || res.R.StatusCode != 0 || len(res.R.Signatures) != 2 {
		t.Fatalf("requestToSign: %s", body)
	}
	if res.R.Certificate != base64.StdEncoding.EncodeToString(s.card.Certificate(vpiv.SlotSignature).Raw) {
		t.Error("the reply's certificate is not the card's signing certificate")
	}
	pub := s.card.Certificate(vpiv.SlotSignature).PublicKey.(*rsa.PublicKey)
	sum := sha256.Sum256(signedInfo)
	for _, sg := range res.R.Signatures {
		raw, _ := base64.StdEncoding.DecodeString(sg.Signature)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
			t.Errorf("signature %s does not verify: %v", sg.ID, err)
		}
	}
	if got := s.card.Signatures() - sigs; got != 2 {
		t.Errorf("the card made %d signatures, want 2", got)
	}
	c.do(t, "POST", "/signalr/abort"+q, "")
	// The prompt (never from the PIN cache, which the registry policy turns on) named the page and the count.
	rec := strings.Split(strings.TrimSpace(readFile(s.w.host(s.record()))), "\n")
	last := rec[len(rec)-1]
	if !strings.Contains(last, "rx.wintest.example") || !strings.Contains(last, "sign 2 prescriptions") {
		t.Errorf("the last prompt %q does not name the page and the count", last)
	}
}
