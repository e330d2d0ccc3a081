package cm

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/logfile"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

const benchPIN = "604917"

// benchEndpoint is the card service with the virtual PIV card in reader 0
// (through the private pcscd) behind the endpoint, JSON logs discarded as a
// service would write them, an instant prompter.
func benchEndpoint(b *testing.B) (*Server, *agent.CardService) {
	b.Helper()
	pcscd := pcsctest.Require(b)
	pki, err := testpki.New()
	if err != nil {
		b.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{Surname: "BENCH", Forename: "MARK", DaysLeft: 400}, func(c *vpiv.Config) { c.PIN = benchPIN })
	if err != nil {
		b.Fatal(err)
	}
	log, err := logfile.ConsoleLogger(io.Discard, "json", "info")
	if err != nil {
		b.Fatal(err)
	}
	svc := &agent.CardService{Log: log.Named("cards")}
	instant := prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(benchPIN), nil })
	s, err := New(log.Named("cm"), svc, instant, Options{Ports: []int{0}, SigningOrigins: []string{goodOrigin}, PromptsPerMinute: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = svc.Serve(ctx); done <- struct{}{} }()
	go func() { _ = s.Serve(ctx); done <- struct{}{} }()
	b.Cleanup(func() { cancel(); <-done; <-done })
	pcscd.Insert(b, 0, card, vcard.Options{})
	deadline := time.Now().Add(15 * time.Second)
	for !ready(svc) {
		if time.Now().After(deadline) {
			b.Fatal("the card was not read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s, svc
}

func ready(svc *agent.CardService) bool {
	for _, r := range svc.Status().Readers {
		if r.Card != nil && r.Card.State == wire.CardReady {
			return true
		}
	}
	return false
}

// benchClient is a SignalR connection as a page holds it (keep-alive HTTP).
type benchClient struct {
	base string
	q    string
	hc   *http.Client
}

func (c *benchClient) do(b *testing.B, method, path, body string) []byte {
	req, _ := http.NewRequest(method, c.base+path+c.q, strings.NewReader(body))
	req.Header.Set("Origin", goodOrigin)
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out)
	}
	return out
}

// connect runs negotiate, connect and start.
func connect(b *testing.B, s *Server, hc *http.Client) *benchClient {
	c := &benchClient{base: fmt.Sprintf("http://localhost:%d/signalr", s.Port()), hc: hc}
	cd := url.QueryEscape(`[{"name":"signinghub"}]`)
	c.q = "?clientProtocol=2.1&connectionData=" + cd
	var n struct{ ConnectionToken string }
	if err := json.Unmarshal(c.do(b, "GET", "/negotiate", ""), &n); err != nil {
		b.Fatal(err)
	}
	c.q = "?transport=longPolling&clientProtocol=2.1&connectionToken=" + url.QueryEscape(n.ConnectionToken) + "&connectionData=" + cd
	c.do(b, "POST", "/connect", "")
	c.do(b, "GET", "/start", "")
	return c
}

// BenchmarkRequestToSignOverhead measures, interleaved in one run, the
// /signalr/send exchange of requestToSign (1 and 20 payloads, RS256, instant
// prompt) and the same card operations done directly with the driver (PIN
// status, then one verify-and-sign with key 9C per payload), on the virtual
// PIV card through pcscd. It reports both times and their ratio (target
// <= 1.05). A page's whole call also includes the SignalR client's own 250 ms
// wait before connecting, reported by BenchmarkHubConnect, not here.
func BenchmarkRequestToSignOverhead(b *testing.B) {
	s, svc := benchEndpoint(b)
	ctx := context.Background()
	sess, err := pcsc.Open(ctx, nil, pcsctest.ReaderNames[0])
	if err != nil {
		b.Fatal(err)
	}
	card, _, err := drivers.Open(ctx, zap.NewNop(), sess, drivers.Options{})
	if err != nil {
		sess.Close()
		b.Fatal(err)
	}
	defer card.Close()
	payload := []byte(`<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><DigestValue>bench</DigestValue></SignedInfo>`)
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("payloads=%d", n), func(b *testing.B) {
			items := make([][2]string, n)
			for i := range items {
				items[i] = [2]string{fmt.Sprint(i), base64.StdEncoding.EncodeToString(payload)}
			}
			call, _ := json.Marshal(map[string]any{"H": "signinghub", "M": "requestToSign", "A": []string{requestArg("RS256", items...)}, "I": 0})
			body := "data=" + url.QueryEscape(string(call))
			c := connect(b, s, &http.Client{})
			overHub := func() {
				var r struct{ R Reply }
				if err := json.Unmarshal(c.do(b, "POST", "/send", body), &r); err != nil || r.R.StatusCode != 0 || len(r.R.Signatures) != n {
					b.Fatalf("reply %+v, %v", r.R, err)
				}
			}
			directOps := func() error {
				if _, err := card.PINStatus(ctx); err != nil {
					return err
				}
				key, err := card.PrivateKey(pcsc.KeySignature, func() ([]byte, error) { return []byte(benchPIN), nil })
				if err != nil {
					return err
				}
				for range n {
					h := crypto.SHA256.New()
					h.Write(payload)
					if _, err := key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256); err != nil {
						return err
					}
				}
				return nil
			}
			// As in the agent, the card operations run on a goroutine of their own.
			direct := func() {
				done := make(chan error)
				go func() { done <- directOps() }()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			// The card service alone (no HTTP, no SignalR), to tell the two costs apart.
			docs := make([][]byte, n)
			for i := range docs {
				docs[i] = payload
			}
			instant := prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(benchPIN), nil })
			service := func() {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				if _, err := svc.SignDocuments(sctx, agent.SignRequest{Origin: goodOrigin, Hash: crypto.SHA256, Documents: docs}, instant); err != nil {
					b.Fatal(err)
				}
			}
			for range 3 {
				overHub()
				direct()
				service()
			}
			var tHub, tDirect, tService time.Duration
			k := 0
			for b.Loop() {
				t0 := time.Now()
				overHub()
				t1 := time.Now()
				direct()
				t2 := time.Now()
				service()
				tService += time.Since(t2)
				tDirect += t2.Sub(t1)
				tHub += t1.Sub(t0)
				k++
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(k) }
			hub, dr, sv := per(tHub), per(tDirect), per(tService)
			b.ReportMetric(hub, "hub-ns/op")
			b.ReportMetric(dr, "direct-ns/op")
			b.ReportMetric(sv, "service-ns/op")
			b.ReportMetric(hub/dr, "ratio")
			b.Logf("%d payloads: /signalr/send %.0f µs, card service %.0f µs, direct driver %.0f µs, ratio %.3f (n=%d)", n, hub/1e3, sv/1e3, dr/1e3, hub/dr, k)
		})
	}
}

// BenchmarkHubConnect measures negotiate -> connect -> start, as a page's
// client does before its call (each on a new connection, keep-alive HTTP),
// and reports p50 and p99 in microseconds. The SignalR client waits 250 ms
// before connect by itself; that wait is not the agent's and is not counted.
func BenchmarkHubConnect(b *testing.B) {
	s, _ := benchEndpoint(b)
	hc := &http.Client{}
	var d []time.Duration
	for b.Loop() {
		t0 := time.Now()
		c := connect(b, s, hc)
		d = append(d, time.Since(t0))
		c.do(b, "POST", "/abort", "")
	}
	slices.Sort(d)
	pct := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.Logf("negotiate+connect+start: p50 %.0f µs, p99 %.0f µs (n=%d)", pct(0.5), pct(0.99), len(d))
}

// BenchmarkHubRoundTrip measures a /signalr/send exchange whose call needs no
// card (a refused argument): the HTTP and SignalR layer alone.
func BenchmarkHubRoundTrip(b *testing.B) {
	s := serve(b, newFakeBackend(b), &countingPrompter{}, Options{})
	c := connect(b, s, &http.Client{})
	call, _ := json.Marshal(map[string]any{"H": "signinghub", "M": "requestToSign", "A": []string{"not base64"}, "I": 0})
	body := "data=" + url.QueryEscape(string(call))
	for b.Loop() {
		c.do(b, "POST", "/send", body)
	}
}
