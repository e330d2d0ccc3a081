package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/demo"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

const (
	// markerPIN is the card's PIN: it must appear in no log line and nowhere in the page.
	markerPIN = "604917"
	// wrongPIN is what the wrong-PIN case types; it must not leak either.
	wrongPIN = "381526"
	// caseTimeout bounds one case, page load to result.
	caseTimeout = 30 * time.Second
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m, closeBrowser)) }

// agentSide is the in-process agent of a browser test and its PIN prompt.
type agentSide struct {
	pinentry string // the scripted pinentry program
	prompter *prompttest.Switch
	svc      *agent.CardService
	log      *zap.Logger // the agent's logger
}

// env is everything one browser test run uses.
type env struct {
	pcscd   *pcsctest.PCSCD
	browser context.Context
	card    *vpiv.Card
	holder  certinfo.Holder
	pki     *testpki.PKI // issued the card's certificates; the demo sites trust it

	agentSide
	agentLog *observer.ObservedLogs
	demoLog  *observer.ObservedLogs

	allowedURL, otherURL string // the demo site at an allowed and at a disallowed origin
	allowed, other       string // their origins
}

// TestBrowserSignIn drives the demo sign-in page in headless Chromium through
// every outcome the page can show. The cases run in order on one agent and
// one card (the card is inserted after "no card" and pulled by "card removed").
func TestBrowserSignIn(t *testing.T) {
	start := time.Now()
	e := setup(t)
	t.Logf("setup took %v", time.Since(start).Round(time.Millisecond))

	t.Run("no card", func(t *testing.T) {
		rec := e.usePinentry(t, "pin", markerPIN)
		r := e.signIn(t, e.allowedURL, nil)
		r.wantError(t, "no_card")
		if n := e.prompter.Calls(); n != 0 {
			t.Errorf("the agent prompted %d times with no card", n)
		}
		if got := readRecords(t, rec); len(got) != 0 {
			t.Errorf("the pinentry ran with no card: %+v", got)
		}
	})

	slot := e.pcscd.Insert(t, 0, e.card, vcard.Options{})
	e.waitCardReady(t)

	t.Run("success", func(t *testing.T) {
		rec := e.usePinentry(t, "pin", markerPIN)
		tries, sigs := e.card.PINTries(), e.card.Signatures()
		r := e.signIn(t, e.allowedURL, nil)
		if r.State != "signed-in" {
			t.Fatalf("page state %q (code %q: %q), want signed-in", r.State, r.Code, r.Message)
		}
		if r.Holder != e.holder.Name || r.UUID != e.holder.UUID {
			t.Errorf("page shows holder %q (%q), want %q (%q)", r.Holder, r.UUID, e.holder.Name, e.holder.UUID)
		}
		if r.Algorithm != "RS256" {
			t.Errorf("algorithm %q, want RS256", r.Algorithm)
		}
		// The demo site verified the token: only then does it log "signed in".
		if got := e.demoLog.FilterMessage("signed in").FilterField(zap.String("holder", e.holder.Name)).Len(); got != 1 {
			t.Errorf("demo site logged %d verified sign-ins for %q, want 1", got, e.holder.Name)
		}
		if got := e.card.Signatures() - sigs; got != 1 {
			t.Errorf("card made %d signatures, want 1", got)
		}
		if got := e.card.PINTries(); got != tries {
			t.Errorf("PIN tries %d after a good PIN, want %d", got, tries)
		}
		recs := readRecords(t, rec)
		if len(recs) != 1 {
			t.Fatalf("pinentry prompted %d times, want 1", len(recs))
		}
		// The prompt named the site, the holder and the tries left.
		for _, want := range []string{e.allowed, e.holder.Name, prompt.TriesLeft(tries)} {
			if !strings.Contains(recs[0].Desc, want) {
				t.Errorf("prompt %q does not mention %q", recs[0].Desc, want)
			}
		}
	})

	t.Run("wrong PIN", func(t *testing.T) {
		e.usePinentry(t, "pin", wrongPIN)
		tries, sigs := e.card.PINTries(), e.card.Signatures()
		r := e.signIn(t, e.allowedURL, nil)
		r.wantError(t, "wrong_pin")
		left := tries - 1
		if got := e.card.PINTries(); got != left {
			t.Errorf("card has %d PIN tries left, want exactly one fewer than %d", got, tries)
		}
		if want := triesText(left); !strings.Contains(r.Message, want) {
			t.Errorf("page says %q, want it to mention %q", r.Message, want)
		}
		if e.card.Signatures() != sigs {
			t.Error("the card signed after a wrong PIN")
		}
		// The card panel is refreshed from the agent's status.
		e.waitPage(t, r.tab, fmt.Sprintf(`#card-status[data-tries-left="%d"]`, left))
	})

	t.Run("cancel", func(t *testing.T) {
		rec := e.usePinentry(t, "cancel", "")
		tries, sigs := e.card.PINTries(), e.card.Signatures()
		r := e.signIn(t, e.allowedURL, nil)
		r.wantError(t, "user_cancelled")
		if got := e.card.PINTries(); got != tries {
			t.Errorf("cancel spent a PIN try: %d left, want %d", got, tries)
		}
		if e.card.Signatures() != sigs {
			t.Error("the card signed after cancel")
		}
		if recs := readRecords(t, rec); len(recs) != 1 || recs[0].Action != "cancel" {
			t.Errorf("pinentry records %+v, want one cancelled prompt", recs)
		}
	})

	t.Run("disallowed origin", func(t *testing.T) {
		rec := e.usePinentry(t, "pin", markerPIN)
		calls, sigs := e.prompter.Calls(), e.card.Signatures()
		refusedBefore := e.refusals(e.other)
		r := e.signIn(t, e.otherURL, nil)
		r.wantError(t, "not_allowed")
		if r.Agent != "missing" {
			t.Errorf("agent status %q on a disallowed page, want missing", r.Agent)
		}
		if n := e.prompter.Calls() - calls; n != 0 {
			t.Errorf("the agent prompted %d times for a disallowed origin", n)
		}
		if recs := readRecords(t, rec); len(recs) != 0 {
			t.Errorf("the pinentry ran for a disallowed origin: %+v", recs)
		}
		if e.card.Signatures() != sigs {
			t.Error("the card signed for a disallowed origin")
		}
		if e.refusals(e.other) == refusedBefore {
			t.Errorf("the agent logged no refusal for origin %s", e.other)
		}
	})

	t.Run("card removed during the prompt", func(t *testing.T) {
		rec := e.usePinentry(t, "hang", markerPIN)
		tries, sigs := e.card.PINTries(), e.card.Signatures()
		e.card.ClearLog()
		var pid int
		r := e.signIn(t, e.allowedURL, func(ctx context.Context) {
			// Wait until the pinentry shows the prompt (the agent has read
			// the PIN status before: the log shows it works), then watch
			// the card and pull it.
			recs := waitRecords(t, ctx, rec, 1)
			pid = recs[0].PID
			if !bytes.Contains(e.card.INSLog(), []byte{0x20}) {
				t.Errorf("the card's log shows no PIN status read before the prompt: % X", e.card.INSLog())
			}
			e.card.ClearLog()
			if err := slot.Remove(); err != nil {
				t.Errorf("removing the card: %v", err)
			}
		})
		r.wantError(t, "card_removed")
		for _, ins := range e.card.INSLog() {
			if ins == 0x20 || ins == 0x87 {
				t.Errorf("the card received INS %02X after it was pulled during the prompt (log % X)", ins, e.card.INSLog())
			}
		}
		if got := e.card.PINTries(); got != tries {
			t.Errorf("PIN tries %d, want %d", got, tries)
		}
		if e.card.Signatures() != sigs {
			t.Error("the card signed")
		}
		if pid != 0 {
			waitGone(t, pid)
		}
	})

	// No PIN, right or wrong, in anything the agent or the demo logged.
	for _, logs := range []*observer.ObservedLogs{e.agentLog, e.demoLog} {
		for _, entry := range logs.All() {
			line := fmt.Sprintf("%s %v", entry.Message, entry.ContextMap())
			for _, pin := range []string{markerPIN, wrongPIN} {
				if strings.Contains(line, pin) {
					t.Errorf("a PIN appears in a log line: %s", line)
				}
			}
		}
	}
	if e.agentLog.Len() == 0 {
		t.Error("no agent log lines captured: the PIN check above proves nothing")
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

func triesText(n int) string {
	if n == 1 {
		return "1 try left"
	}
	return fmt.Sprintf("%d tries left", n)
}

// setup starts the private pcscd, the browser, two demo sites and the agent.
func setup(t *testing.T) *env {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith is setup with configure (if not nil) applied to the card
// service before it starts.
func setupWith(t *testing.T, configure func(*agent.CardService)) *env {
	t.Helper()
	e := &env{}
	e.pcscd = pcsctest.Require(t)
	e.browser = requireBrowser(t)

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e.pinentry = buildPinentry(t, root)
	client, err := os.ReadFile(filepath.Join(root, "web", "cardagent-client", "cardagent.js"))
	if err != nil {
		t.Fatalf("reading the JS client: %v", err)
	}

	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	e.pki = pki
	creds, err := pki.IssueCard(testpki.CardSpec{Surname: "Browser", Forename: "Testing", DaysLeft: 365})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vpiv.NHSConfig(creds)
	cfg.PIN = markerPIN
	if e.card, err = vpiv.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.holder = certinfo.HolderOf(creds.AuthCert)

	// The demo site at an allowed origin (http://localhost:P, a secure
	// context) and at one the agent does not allow (http://127.0.0.1:Q).
	demoCore, demoLogs := observer.New(zap.DebugLevel)
	e.demoLog = demoLogs
	trust := demo.StaticTrust{Roots: pki.Roots(), Intermediates: pki.Intermediates()}
	e.allowed, e.allowedURL = serveDemo(t, "localhost", trust, client, zap.New(demoCore))
	e.other, e.otherURL = serveDemo(t, "127.0.0.1", trust, client, zap.New(demoCore))
	// The agent's ports: private ones, which the page's client probes
	// (?ports=) instead of the default range, where a developer's own agent
	// may be listening.
	ports := pcsctest.FreePorts(t, 3)
	e.allowedURL += "?ports=" + joinInts(ports)
	e.otherURL += "?ports=" + joinInts(ports)

	// The agent, in-process: the card service and the loopback API on those
	// ports, allowing only the first demo origin, with the scripted pinentry
	// as its prompt.
	core, logs := observer.New(zap.DebugLevel)
	e.agentLog = logs
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Core()))
	e.log = log
	e.prompter = &prompttest.Switch{}
	e.svc = &agent.CardService{Log: log.Named("cards")}
	if configure != nil {
		configure(e.svc)
	}
	srv, err := api.New(log.Named("api"), e.svc, e.prompter, api.Options{
		Ports:            ports,
		AllowedOrigins:   []string{e.allowed},
		PromptsPerMinute: 60,
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatalf("agent listen: %v", err)
	}
	t.Logf("agent on port %d; allowed %s, disallowed %s", port, e.allowed, e.other)
	serveAgent(t, e.svc.Serve, srv.Serve)
	return e
}

// serveDemo serves the demo site on host (a loopback name) and returns its
// origin and page URL.
func serveDemo(t *testing.T, host string, trust demo.Trust, client []byte, log *zap.Logger) (origin, page string) {
	t.Helper()
	return serveSite(t, host, func(origin string) http.Handler {
		site, err := demo.New(demo.Config{Origin: origin, Trust: trust, Client: client, Log: log.With(zap.String("site", origin))})
		if err != nil {
			t.Fatal(err)
		}
		return site
	})
}

// serveSite serves the handler made for its origin on 127.0.0.1, named
// host (a loopback name) in the origin, until the test ends; it returns the
// origin and the site's page URL.
func serveSite(t *testing.T, host string, handler func(origin string) http.Handler) (origin, page string) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin = fmt.Sprintf("http://%s:%d", host, l.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: handler(origin), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	})
	return origin, origin + "/"
}

// buildPinentry builds the scripted pinentry into a temporary directory.
func buildPinentry(t *testing.T, root string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "scripted-pinentry")
	cmd := exec.Command(goTool(), "build", "-o", out, "./testdata/pinentry/scripted")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the scripted pinentry: %v\n%s", err, b)
	}
	return out
}

func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// waitCardReady waits until the agent has read the inserted card.
func (e *agentSide) waitCardReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range e.svc.Status().Readers {
			if r.Card != nil && r.Card.State == wire.CardReady {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent did not read the card: %+v", e.svc.Status())
}

// refusals counts the agent's log lines refusing a request from origin.
func (e *env) refusals(origin string) int {
	n := 0
	for _, entry := range e.agentLog.FilterMessage("request refused").All() {
		if strings.Contains(fmt.Sprint(entry.ContextMap()["origin"]), origin) {
			n++
		}
	}
	return n
}

// usePinentry makes the agent's prompt run the scripted pinentry with action
// and pin, recording to a fresh file whose path it returns.
func (e *agentSide) usePinentry(t *testing.T, action, pin string) string {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "prompts.jsonl")
	args := []string{"-action", action, "-record", rec}
	if pin != "" {
		args = append(args, "-pin", pin)
	}
	e.prompter.Set(&prompt.Pinentry{Path: e.pinentry, Args: args, Timeout: 20 * time.Second, Log: e.log.Named("prompt")})
	return rec
}

// record is one line of the scripted pinentry's record file.
type record struct {
	PID    int    `json:"pid"`
	Title  string `json:"title"`
	Desc   string `json:"desc"`
	Action string `json:"action"`
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func waitRecords(t *testing.T, ctx context.Context, path string, n int) []record {
	t.Helper()
	for {
		if recs := readRecords(t, path); len(recs) >= n {
			return recs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the pinentry was not started: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitGone waits for the process pid to end (the agent kills a pinentry whose
// prompt is no longer needed).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p, err := os.FindProcess(pid)
		if err != nil || p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the pinentry (pid %d) still runs after the card was pulled", pid)
}

// pageResult is what the page's test hooks show.
type pageResult struct {
	tab       context.Context
	State     string `json:"state"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Holder    string `json:"holder"`
	UUID      string `json:"uuid"`
	Algorithm string `json:"algorithm"`
	Agent     string `json:"agent"`
	TriesLeft string `json:"triesLeft"`
	HTML      string `json:"html"`
}

func (r pageResult) wantError(t *testing.T, code string) {
	t.Helper()
	if r.State != "error" || r.Code != code {
		t.Fatalf("page state %q code %q (%q), want error %q", r.State, r.Code, r.Message, code)
	}
}

const readHooks = `(() => {
  const $ = (id) => document.getElementById(id);
  return {
    state: document.body.dataset.state ?? "",
    code: $("message").dataset.code ?? "",
    message: $("message").textContent,
    holder: $("holder").textContent,
    uuid: $("uuid").textContent,
    algorithm: $("algorithm").textContent,
    agent: $("agent-status").dataset.agent ?? "",
    triesLeft: $("card-status").dataset.triesLeft ?? "",
    html: document.documentElement.outerHTML,
  };
})()`

// signIn opens url in a new tab, waits for the page to look for the agent,
// presses "Sign in", runs during (if any) while the sign-in is under way, and
// returns the page's hooks once it shows a result. The tab closes when t ends.
func (e *env) signIn(t *testing.T, url string, during func(ctx context.Context)) pageResult {
	t.Helper()
	tab, closeTab := chromedp.NewContext(e.browser)
	t.Cleanup(closeTab)
	// The first Run creates the tab; it gets the tab's own context (a
	// derived one with a timeout would close the tab when it ends).
	watchdog := time.AfterFunc(caseTimeout, closeTab)
	err := chromedp.Run(tab)
	watchdog.Stop()
	if err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	var (
		mu      sync.Mutex
		console []string
	)
	chromedp.ListenTarget(tab, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			line = "exception: " + ev.ExceptionDetails.Error()
		default:
			return
		}
		mu.Lock()
		console = append(console, line)
		mu.Unlock()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			for _, l := range console {
				t.Log("page " + l)
			}
		}
	})
	ctx, cancel := context.WithTimeout(tab, caseTimeout)
	defer cancel()
	err = chromedp.Run(ctx,
		chromedp.Navigate(url),
		chromedp.WaitReady(`body[data-state="ready"]`, chromedp.ByQuery),
		chromedp.WaitReady(`#agent-status:not([data-agent="unknown"])`, chromedp.ByQuery),
		chromedp.Click("#signin", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("opening %s and pressing Sign in: %v", url, err)
	}
	if during != nil {
		during(ctx)
	}
	var r pageResult
	err = chromedp.Run(ctx,
		chromedp.WaitReady(`body[data-state="signed-in"], body[data-state="error"]`, chromedp.ByQuery),
		chromedp.Evaluate(readHooks, &r),
	)
	if err != nil {
		now := peek(tab)
		t.Fatalf("waiting for the sign-in result on %s: %v (page state %q, message %q)", url, err, now.State, now.Message)
	}
	r.tab = tab
	for _, pin := range []string{markerPIN, wrongPIN} {
		if strings.Contains(r.HTML, pin) {
			t.Errorf("the page contains a PIN")
		}
	}
	mu.Lock()
	for _, l := range console {
		if strings.Contains(l, markerPIN) || strings.Contains(l, wrongPIN) {
			t.Errorf("a PIN appears in the page's console: %s", l)
		}
	}
	mu.Unlock()
	return r
}

// waitPage waits until selector matches in the tab of a previous signIn.
func (e *env) waitPage(t *testing.T, tab context.Context, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.WaitReady(selector, chromedp.ByQuery)); err != nil {
		now := peek(tab)
		t.Errorf("page never matched %s: %v (tries left shown: %q)", selector, err, now.TriesLeft)
	}
}

// peek reads the page's hooks for a failure message, without waiting long.
func peek(tab context.Context) pageResult {
	ctx, cancel := context.WithTimeout(tab, 2*time.Second)
	defer cancel()
	var r pageResult
	_ = chromedp.Run(ctx, chromedp.Evaluate(readHooks, &r))
	return r
}

// serveAgent runs the agent's parts (the card service, its servers) until
// the test ends; a part that fails fails the test.
func serveAgent(t *testing.T, parts ...func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, serve := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
