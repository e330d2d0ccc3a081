package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/cm"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/demo"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// The SignalR clients the prescribing page can load (page.js's client=).
var cmClients = []string{"v020", "v021", "jquery"}

// cmEnv is one run of the Credential Management compatibility test: a
// private pcscd, the agent's card service and Credential Management endpoint
// on five private Port Service ports, and a prescribing page at an allowed
// and at a refused origin, in headless Chromium.
type cmEnv struct {
	pcscd   *pcsctest.PCSCD
	browser context.Context
	agentSide
	agentLog *observer.ObservedLogs
	srv      *cm.Server
	ports    []int

	piv    *vpiv.Card
	s8     *vseries8.Card
	holder certinfo.Holder

	allowed, other       string // the page's two origins
	allowedURL, otherURL string // the page, without its query
	demo                 string // the demo relying party's origin (a signing origin too)
}

// cmReply is requestToSign's reply, as the page's SignalR client decoded it.
type cmReply struct {
	Certificate      string `json:"certificate"`
	Signatures       []struct{ ID, Signature string }
	FailedSignatures []struct{ ID, Signature string } `json:"failed_signatures"`
	StatusCode       uint32                           `json:"status_code"`
	StatusString     string                           `json:"status_string"`
	Message          string                           `json:"message"`
	Timestamp        string                           `json:"timestamp"`
}

// cmOutcome is what the page's test hooks return for one call.
type cmOutcome struct {
	OK    bool            `json:"ok"`
	Reply json.RawMessage `json:"reply"`
	Error string          `json:"error"`
}

func (o cmOutcome) reply(t *testing.T) cmReply {
	t.Helper()
	if !o.OK {
		t.Fatalf("the page's call failed: %s", o.Error)
	}
	var r cmReply
	dec := json.NewDecoder(bytes.NewReader(o.Reply))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("reply %s: %v", o.Reply, err)
	}
	// The fields, in Credential Management's order.
	var keys []string
	d := json.NewDecoder(bytes.NewReader(o.Reply))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	for d.More() {
		tok, _ := d.Token()
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(keys, ","), "certificate,signatures,failed_signatures,status_code,status_string,message,timestamp"; got != want {
		t.Errorf("reply fields %s, want %s", got, want)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.0000000Z", r.Timestamp); err != nil || len(r.Timestamp) != 28 {
		t.Errorf("timestamp %q is not .NET's round-trip UTC form: %v", r.Timestamp, err)
	}
	return r
}

func (r cmReply) wantStatus(t *testing.T, code uint32) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("status_code 0x%08X (%s: %q), want 0x%08X", r.StatusCode, r.StatusString, r.Message, code)
	}
	if code != cm.StatusOK {
		if r.StatusString != "ERROR" || r.Certificate != "" || r.Signatures != nil || r.FailedSignatures != nil {
			t.Errorf("error reply %+v: want status_string ERROR, no certificate, null signatures", r)
		}
		if want := fmt.Sprintf("(0x%08X)", code); !strings.Contains(r.Message, want) {
			t.Errorf("message %q does not name the code %s", r.Message, want)
		}
	}
}

// TestCredentialManagement signs EPS-style prescriptions from a page that
// finds the agent through the Port Service and calls the signing hub with
// the real SignalR JavaScript clients from npm, exactly as NHS's library
// does, and checks every signature as EPS does. The cases run in order on
// one agent.
func TestCredentialManagement(t *testing.T) {
	start := time.Now()
	e := setupCM(t)
	t.Logf("setup took %v", time.Since(start).Round(time.Millisecond))
	tab := e.openPage(t, e.allowedURL, "v021")

	t.Run("no card", func(t *testing.T) {
		calls := e.prompter.Calls()
		r := e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t)
		r.wantStatus(t, cm.StatusNoCertificate)
		if !strings.HasPrefix(r.Message, "Unable to locate a Smartcard on the local system") {
			t.Errorf("message %q is not Credential Management's", r.Message)
		}
		if e.prompter.Calls() != calls {
			t.Error("the agent prompted with no card")
		}
	})

	pivSlot := e.pcscd.Insert(t, 0, e.piv, vcard.Options{})
	e.waitCardReady(t)

	t.Run("malformed argument", func(t *testing.T) {
		calls, sigs := e.prompter.Calls(), e.piv.Signatures()
		for _, arg := range []string{"not base64 at all!", base64.StdEncoding.EncodeToString([]byte("{not json")), ""} {
			r := e.signRaw(t, tab, arg).reply(t)
			r.wantStatus(t, cm.StatusBadRequest)
			if !strings.HasPrefix(r.Message, "Failed to process inbound JSON request.") {
				t.Errorf("message %q is not Credential Management's", r.Message)
			}
		}
		if e.prompter.Calls() != calls || e.piv.Signatures() != sigs {
			t.Error("a malformed request prompted or signed")
		}
	})

	for _, client := range cmClients {
		for _, alg := range []string{"RS1", "RS256"} {
			t.Run("sign "+alg+" with "+client, func(t *testing.T) {
				ctab := e.openPage(t, e.allowedURL, client)
				rec := e.usePinentry(t, "pin", markerPIN)
				tries, sigs := e.piv.PINTries(), e.piv.Signatures()
				items := eps(1, alg)
				r := e.sign(t, ctab, alg, items).reply(t)
				r.wantStatus(t, cm.StatusOK)
				e.verify(t, alg, items, r, e.piv.Certificate(vpiv.SlotSignature))
				if got := e.piv.Signatures() - sigs; got != 1 {
					t.Errorf("card made %d signatures, want 1", got)
				}
				if e.piv.PINTries() != tries {
					t.Errorf("PIN tries %d after a good PIN, want %d", e.piv.PINTries(), tries)
				}
				recs := readRecords(t, rec)
				if len(recs) != 1 {
					t.Fatalf("%d prompts, want 1", len(recs))
				}
				for _, want := range []string{e.allowed, e.holder.Name, "sign 1 prescription.", prompt.TriesLeft(tries)} {
					if !strings.Contains(recs[0].Desc, want) {
						t.Errorf("prompt %q does not mention %q", recs[0].Desc, want)
					}
				}
			})
		}
	}

	t.Run("batch of 20 with one prompt", func(t *testing.T) {
		rec := e.usePinentry(t, "pin", markerPIN)
		sigs := e.piv.Signatures()
		items := eps(20, "RS256")
		r := e.sign(t, tab, "RS256", items).reply(t)
		r.wantStatus(t, cm.StatusOK)
		e.verify(t, "RS256", items, r, e.piv.Certificate(vpiv.SlotSignature))
		if got := e.piv.Signatures() - sigs; got != 20 {
			t.Errorf("card made %d signatures, want 20", got)
		}
		recs := readRecords(t, rec)
		if len(recs) != 1 || !strings.Contains(recs[0].Desc, "sign 20 prescriptions") {
			t.Errorf("prompts %+v, want one naming 20 prescriptions", recs)
		}
	})

	t.Run("wrong PIN", func(t *testing.T) {
		e.usePinentry(t, "pin", wrongPIN)
		tries, sigs := e.piv.PINTries(), e.piv.Signatures()
		r := e.sign(t, tab, "RS1", eps(3, "RS1")).reply(t)
		r.wantStatus(t, cm.StatusWrongPIN)
		if got := e.piv.PINTries(); got != tries-1 {
			t.Errorf("card has %d tries left, want exactly one fewer than %d", got, tries)
		}
		if want := prompt.TriesLeft(tries - 1); !strings.Contains(r.Message, want) {
			t.Errorf("message %q does not say %q", r.Message, want)
		}
		if e.piv.Signatures() != sigs {
			t.Error("the card signed after a wrong PIN")
		}
	})

	t.Run("right PIN restores the tries", func(t *testing.T) {
		e.usePinentry(t, "pin", markerPIN)
		r := e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t)
		r.wantStatus(t, cm.StatusOK)
		if got := e.piv.PINTries(); got != 3 {
			t.Errorf("tries %d after a right PIN, want 3", got)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		rec := e.usePinentry(t, "cancel", "")
		tries, sigs := e.piv.PINTries(), e.piv.Signatures()
		r := e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t)
		r.wantStatus(t, cm.StatusCancelled)
		if e.piv.PINTries() != tries || e.piv.Signatures() != sigs {
			t.Error("cancel spent a try or signed")
		}
		if recs := readRecords(t, rec); len(recs) != 1 || recs[0].Action != "cancel" {
			t.Errorf("prompts %+v, want one cancelled", recs)
		}
	})

	t.Run("seven calls in one page", func(t *testing.T) {
		// NHS's library opens a connection per call and never stops it; the
		// browser holds six connections per host, so without the agent ending
		// older connections the sixth call would stall.
		e.usePinentry(t, "pin", markerPIN)
		for i := range 7 {
			began := time.Now()
			r := e.sign(t, tab, "RS256", eps(1, "RS256")).reply(t)
			r.wantStatus(t, cm.StatusOK)
			t.Logf("call %d: %v, %d hub connections open", i+1, time.Since(began).Round(time.Millisecond), e.srv.OpenConnections())
		}
		if n := e.srv.OpenConnections(); n > 3 {
			t.Errorf("%d hub connections open after seven calls from one page, want at most 3", n)
		}
	})

	t.Run("demo prescription page", func(t *testing.T) {
		// The demo relying party's page: its own small client of the same
		// interface, then EPS-style verification on the site.
		rec := e.usePinentry(t, "pin", markerPIN)
		sigs := e.piv.Signatures()
		dtab, closeTab := chromedp.NewContext(e.browser)
		defer closeTab()
		ctx, cancel := context.WithTimeout(dtab, caseTimeout)
		defer cancel()
		var verified, holder, state, msg string
		err := chromedp.Run(ctx,
			chromedp.Navigate(e.demo+"/prescribe?ports="+joinInts(e.ports)),
			chromedp.WaitReady(`body[data-state="ready"]`, chromedp.ByQuery),
			chromedp.SetValue("#count", "3", chromedp.ByQuery),
			chromedp.Click("#sign", chromedp.ByQuery),
			chromedp.WaitReady(`body[data-state="signed"], body[data-state="error"]`, chromedp.ByQuery),
			chromedp.Evaluate(`document.body.dataset.state`, &state),
			chromedp.Text("#message", &msg, chromedp.ByQuery),
			chromedp.Evaluate(`document.getElementById("verified").textContent`, &verified),
			chromedp.Evaluate(`document.getElementById("holder").textContent`, &holder),
		)
		if err != nil {
			t.Fatal(err)
		}
		if state != "signed" || verified != "3 prescriptions" || holder != e.holder.Name {
			t.Fatalf("demo page: state %q (%q), %q signed by %q; want 3 prescriptions by %q", state, msg, verified, holder, e.holder.Name)
		}
		if got := e.piv.Signatures() - sigs; got != 3 {
			t.Errorf("card made %d signatures, want 3", got)
		}
		if recs := readRecords(t, rec); len(recs) != 1 || !strings.Contains(recs[0].Desc, e.demo) || !strings.Contains(recs[0].Desc, "sign 3 prescriptions") {
			t.Errorf("prompts %+v", recs)
		}
	})

	t.Run("disallowed origin", func(t *testing.T) {
		rec := e.usePinentry(t, "pin", markerPIN)
		calls, sigs := e.prompter.Calls(), e.piv.Signatures()
		otab := e.openPage(t, e.otherURL, "v021")
		o := e.eval(t, otab, `window.test.locate()`)
		if o.OK {
			t.Fatalf("a page of a refused origin found the agent: %s", o.Reply)
		}
		// Straight to the endpoint with that Origin: refused, no CORS header.
		for _, path := range []string{cm.PathGetPortNumber, "/signalr/negotiate?clientProtocol=2.1&connectionData=%5B%5D"} {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://localhost:%d%s", e.srv.Port(), path), nil)
			req.Header.Set("Origin", e.other)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s from a refused origin: %d, Access-Control-Allow-Origin %q", path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		if e.prompter.Calls() != calls || e.piv.Signatures() != sigs || len(readRecords(t, rec)) != 0 {
			t.Error("a refused origin caused a prompt or a signature")
		}
	})

	t.Run("card removed during the prompt", func(t *testing.T) {
		rec := e.usePinentry(t, "hang", markerPIN)
		tries, sigs := e.piv.PINTries(), e.piv.Signatures()
		done := make(chan cmOutcome, 1)
		go func() { done <- e.evalNoFail(tab, signExpr("RS1", eps(1, "RS1"))) }()
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		waitRecords(t, ctx, rec, 1)
		// The tray shows the signing while it runs.
		if a := e.svc.Activity(); a == nil || a.Words() != "Signing 1 prescription for "+e.allowed {
			t.Errorf("activity during the prompt: %+v", a)
		}
		e.piv.ClearLog()
		if err := pivSlot.Remove(); err != nil {
			t.Fatal(err)
		}
		var o cmOutcome
		select {
		case o = <-done:
		case <-ctx.Done():
			t.Fatal("no reply after the card was pulled")
		}
		o.reply(t).wantStatus(t, cm.StatusCardRemoved)
		for _, ins := range e.piv.INSLog() {
			if ins == 0x20 || ins == 0x87 {
				t.Errorf("the card got INS %02X after it was pulled", ins)
			}
		}
		if e.piv.PINTries() != tries || e.piv.Signatures() != sigs {
			t.Error("a pulled card spent a try or signed")
		}
		if a := e.svc.Activity(); a != nil {
			t.Errorf("activity after the request: %+v", a)
		}
	})

	var s8Slot *vcard.Slot
	t.Run("series 8", func(t *testing.T) {
		e.pcscd.WaitCard(t, 0, false)
		s8Slot = e.pcscd.Insert(t, 1, e.s8, vcard.Options{})
		e.waitCardReady(t)
		for _, alg := range []string{"RS256", "RS1"} {
			e.usePinentry(t, "pin", markerPIN)
			sigs := e.s8.Signatures()
			items := eps(2, alg)
			r := e.sign(t, tab, alg, items).reply(t)
			r.wantStatus(t, cm.StatusOK)
			e.verify(t, alg, items, r, nil)
			if got := e.s8.Signatures() - sigs; got != 2 {
				t.Errorf("%s: series 8 card made %d signatures, want 2", alg, got)
			}
		}
	})

	t.Run("the try that blocks the PIN", func(t *testing.T) {
		// Real cards (and the virtual PIV card) answer the blocking VERIFY
		// with 69 83: the reply says blocked, and so does the status at once.
		if s8Slot == nil {
			t.Skip("the series 8 case did not run")
		}
		if err := s8Slot.Remove(); err != nil {
			t.Fatal(err)
		}
		e.pcscd.WaitCard(t, 1, false)
		e.pcscd.Insert(t, 0, e.piv, vcard.Options{})
		e.waitCardReady(t)
		e.usePinentry(t, "pin", wrongPIN)
		for e.piv.PINTries() > 1 {
			e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t).wantStatus(t, cm.StatusWrongPIN)
		}
		e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t).wantStatus(t, cm.StatusPINBlocked)
		if e.piv.PINTries() != 0 {
			t.Fatalf("card has %d tries, want 0", e.piv.PINTries())
		}
		blocked := false
		for _, r := range e.svc.Status().Readers {
			if r.Card != nil && r.Card.PIN != nil && r.Card.PIN.Blocked {
				blocked = true
			}
		}
		if !blocked {
			t.Errorf("status does not say blocked after the blocking try: %+v", e.svc.Status())
		}
		calls := e.prompter.Calls()
		e.sign(t, tab, "RS1", eps(1, "RS1")).reply(t).wantStatus(t, cm.StatusPINBlocked)
		if e.prompter.Calls() != calls {
			t.Error("a blocked card was prompted for")
		}
	})

	// No PIN, right or wrong, in anything the agent logged.
	for _, entry := range e.agentLog.All() {
		line := fmt.Sprintf("%s %v", entry.Message, entry.ContextMap())
		for _, pin := range []string{markerPIN, wrongPIN} {
			if strings.Contains(line, pin) {
				t.Errorf("a PIN appears in a log line: %s", line)
			}
		}
	}
	if e.agentLog.FilterMessage("signed").Len() == 0 {
		t.Error("no audit line \"signed\" was logged")
	}
	t.Logf("Credential Management test took %v", time.Since(start).Round(time.Millisecond))
}

// eps makes n EPS-style payloads: base64 of a canonical SignedInfo, as the
// EPS $prepare endpoint returns them for alg.
func eps(n int, alg string) []map[string]string {
	sigMethod, digMethod := "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"
	if alg == "RS256" {
		sigMethod, digMethod = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"
	}
	out := make([]map[string]string, n)
	for i := range out {
		sum := sha256.Sum256([]byte(fmt.Sprintf("prescription %d %d", i, time.Now().UnixNano())))
		digest := sum[:]
		if alg == "RS1" {
			s := sha1.Sum(sum[:])
			digest = s[:]
		}
		si := `<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>` +
			`<SignatureMethod Algorithm="` + sigMethod + `"></SignatureMethod><Reference><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></Transform></Transforms>` +
			`<DigestMethod Algorithm="` + digMethod + `"></DigestMethod><DigestValue>` + base64.StdEncoding.EncodeToString(digest) + `</DigestValue></Reference></SignedInfo>`
		out[i] = map[string]string{"id": fmt.Sprintf("rx-%02d-%x", i, sum[:4]), "payload": base64.StdEncoding.EncodeToString([]byte(si))}
	}
	return out
}

// verify checks the reply as EPS does (node's crypto.createVerify over the
// decoded payload with the returned certificate), and in Go that the
// certificate is the card's signing certificate (want, when given).
func (e *cmEnv) verify(t *testing.T, alg string, items []map[string]string, r cmReply, want *x509.Certificate) {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(r.Certificate)
	if err != nil {
		t.Fatalf("certificate is not base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	if want != nil && !cert.Equal(want) {
		t.Errorf("signed with %q, want the signing certificate %q", cert.Subject, want.Subject)
	}
	if cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		t.Errorf("the certificate %q is not a signing (non-repudiation) certificate", cert.Subject)
	}
	if len(r.Signatures) != len(items) {
		t.Fatalf("%d signatures for %d payloads", len(r.Signatures), len(items))
	}
	type item struct {
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}
	in := struct {
		Algorithm   string `json:"algorithm"`
		Certificate string `json:"certificate"`
		Items       []item `json:"items"`
	}{Algorithm: alg, Certificate: r.Certificate}
	for i, s := range r.Signatures {
		if s.ID != items[i]["id"] {
			t.Errorf("signature %d has id %q, want %q", i, s.ID, items[i]["id"])
		}
		in.Items = append(in.Items, item{Payload: items[i]["payload"], Signature: s.Signature})
	}
	b, _ := json.Marshal(in)
	cmd := exec.Command("node", filepath.Join("testdata", "prescribing", "eps-verify.mjs"))
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("EPS-style verification: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(items) {
		t.Fatalf("verifier printed %q for %d items", out, len(items))
	}
	for i, l := range lines {
		if l != "ok" {
			t.Errorf("signature %d does not verify as EPS checks it", i)
		}
	}
}

func signExpr(alg string, items []map[string]string) string {
	b, _ := json.Marshal(items)
	return fmt.Sprintf("window.test.sign(%q, %s)", alg, b)
}

func (e *cmEnv) sign(t *testing.T, tab context.Context, alg string, items []map[string]string) cmOutcome {
	t.Helper()
	return e.eval(t, tab, signExpr(alg, items))
}

func (e *cmEnv) signRaw(t *testing.T, tab context.Context, arg string) cmOutcome {
	t.Helper()
	b, _ := json.Marshal(arg)
	return e.eval(t, tab, "window.test.signRaw("+string(b)+")")
}

func (e *cmEnv) eval(t *testing.T, tab context.Context, expr string) cmOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, caseTimeout)
	defer cancel()
	var o cmOutcome
	if err := chromedp.Run(ctx, chromedp.Evaluate(expr, &o, awaitPromise)); err != nil {
		t.Fatalf("page call %.60s...: %v", expr, err)
	}
	return o
}

func (e *cmEnv) evalNoFail(tab context.Context, expr string) cmOutcome {
	ctx, cancel := context.WithTimeout(tab, caseTimeout)
	defer cancel()
	var o cmOutcome
	if err := chromedp.Run(ctx, chromedp.Evaluate(expr, &o, awaitPromise)); err != nil {
		return cmOutcome{Error: err.Error()}
	}
	return o
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// openPage opens the prescribing page with a SignalR client in a new tab.
func (e *cmEnv) openPage(t *testing.T, base, client string) context.Context {
	t.Helper()
	tab, closeTab := chromedp.NewContext(e.browser)
	t.Cleanup(closeTab)
	watchdog := time.AfterFunc(caseTimeout, closeTab)
	err := chromedp.Run(tab)
	watchdog.Stop()
	if err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	ports := make([]string, len(e.ports))
	for i, p := range e.ports {
		ports[i] = strconv.Itoa(p)
	}
	url := base + "?client=" + client + "&ports=" + strings.Join(ports, ",")
	ctx, cancel := context.WithTimeout(tab, caseTimeout)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitReady(`body[data-state="ready"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	return tab
}

// setupCM starts everything TestCredentialManagement uses.
func setupCM(t *testing.T) *cmEnv {
	t.Helper()
	e := &cmEnv{}
	e.pcscd = pcsctest.Require(t)
	e.browser = requireBrowser(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (run scripts/setup)")
	}
	client := bundleSignalRClients(t, root)
	e.pinentry = buildPinentry(t, root)

	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.IssueCard(testpki.CardSpec{Surname: "Prescriber", Forename: "Pat", DaysLeft: 365})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vpiv.NHSConfig(creds)
	cfg.PIN = markerPIN
	if e.piv, err = vpiv.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.holder = certinfo.HolderOf(creds.AuthCert)
	s8creds, err := pki.IssueCard(testpki.CardSpec{Surname: "Eight", Forename: "Series", DaysLeft: 365, KeyType: testpki.RSA2048, KeyIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	s8cfg, err := vseries8.NHSConfig(s8creds)
	if err != nil {
		t.Fatal(err)
	}
	s8cfg.PIN = []byte(markerPIN)
	if e.s8, err = vseries8.New(s8cfg); err != nil {
		t.Fatal(err)
	}

	e.allowed, e.allowedURL = servePrescribing(t, "localhost", client)
	e.other, e.otherURL = servePrescribing(t, "127.0.0.1", client)
	e.demo, _ = serveDemo(t, "localhost", demo.StaticTrust{Roots: pki.Roots(), Intermediates: pki.Intermediates()}, nil, zap.NewNop())

	core, logs := observer.New(zap.DebugLevel)
	e.agentLog = logs
	e.log = zap.New(zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Core()))
	e.prompter = &prompttest.Switch{}
	e.svc = &agent.CardService{Log: e.log.Named("cards")}
	// Five private ports stand for the five Port Service ports, so a
	// developer's own agent (on the real ones) is never touched.
	e.ports = pcsctest.FreePorts(t, 5)
	e.srv, err = cm.New(e.log.Named("cm"), e.svc, e.prompter, cm.Options{
		Ports:            e.ports,
		SigningOrigins:   []string{e.allowed, e.demo},
		PromptsPerMinute: 60,
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := e.srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Credential Management endpoint on port %d of %v; page %s, refused %s", port, e.ports, e.allowed, e.other)
	serveAgent(t, e.svc.Serve, e.srv.Serve)
	return e
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// bundleSignalRClients bundles the three SignalR clients (installed by
// scripts/setup from e2e/signalr-clients/package.json) with esbuild into one
// script defining window.signalrV020, window.signalrV021 and jQuery.signalR.
func bundleSignalRClients(t *testing.T, root string) []byte {
	t.Helper()
	dir := filepath.Join(root, "e2e", "signalr-clients")
	esbuild := filepath.Join(dir, "node_modules", ".bin", "esbuild")
	if _, err := os.Stat(esbuild); err != nil {
		t.Fatalf("the SignalR clients are not installed (run scripts/setup, or npm ci in %s): %v", dir, err)
	}
	entry := `window.signalrV020 = require("signalr-no-jquery-020");
window.signalrV021 = require("signalr-no-jquery-021");
window.jQuery = window.$ = require("jquery");
require("signalr");
`
	cmd := exec.Command(esbuild, "--bundle", "--format=iife", "--log-level=warning")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(entry)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("esbuild: %v\n%s", err, stderr.String())
	}
	return out
}

// servePrescribing serves the prescribing page on host (a loopback name)
// and returns its origin and URL.
func servePrescribing(t *testing.T, host string, client []byte) (origin, page string) {
	t.Helper()
	files := map[string]string{"/": "page.html", "/page.js": "page.js"}
	return serveSite(t, host, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/client.js" {
				w.Header().Set("Content-Type", "text/javascript")
				_, _ = w.Write(client)
				return
			}
			name, ok := files[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeFile(w, r, filepath.Join("testdata", "prescribing", name))
		})
	})
}
