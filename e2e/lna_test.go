package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// lnaBrowser starts a headless Chromium of its own that takes the page on
// 127.0.0.1:pagePort for a public site (--ip-address-space-overrides), so
// Chrome's Local Network Access applies to its requests to the agent, and
// accepts the page's test certificate. With a policy, Chromium reads it from
// its managed policy folder /etc/chromium/policies/managed: a temporary
// directory bind-mounted over /etc/chromium in a private mount namespace
// (unshare, as root), so the host's /etc is never written.
func lnaBrowser(t *testing.T, pagePort int, policy []byte) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helpers may write to the profile for a
	// moment after the browser exited (see closeBrowser).
	dir, err := os.MkdirTemp("", "cardagent-e2e-lna-")
	if err != nil {
		t.Fatal(err)
	}
	exe := chromiumPath()
	if policy != nil {
		etc := filepath.Join(dir, "etc-chromium")
		if err := os.MkdirAll(filepath.Join(etc, "policies", "managed"), 0o755); err != nil {
			t.Fatal(err)
		}
		if prefs, err := os.ReadFile("/etc/chromium/master_preferences"); err == nil {
			if err := os.WriteFile(filepath.Join(etc, "master_preferences"), prefs, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(etc, "policies", "managed", "cardagent.json"), policy, 0o644); err != nil {
			t.Fatal(err)
		}
		wrapper := filepath.Join(dir, "chromium-with-policy")
		script := fmt.Sprintf("#!/bin/sh\nexec unshare --mount --propagation private sh -c 'mount --bind \"$0\" /etc/chromium && exec \"$@\"' %q %q \"$@\"\n", etc, exe)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		exe = wrapper
	}
	profile := filepath.Join(dir, "profile")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.UserDataDir(profile), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("ip-address-space-overrides", fmt.Sprintf("127.0.0.1:%d=public", pagePort)),
		chromedp.Env("XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		for i := 0; i < 20; i++ {
			os.RemoveAll(dir)
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	watchdog := time.AfterFunc(time.Minute, cancelBrowser)
	defer watchdog.Stop()
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("launching %s: %v", exe, err)
	}
	return ctx
}

// TestBrowserLocalNetworkAccess: a public https page reaching the agent on
// loopback. Without IT's policy Chromium keeps the page from loopback (in
// headless Chromium the permission prompt is refused at once) and the JS
// client says so with local_network_denied, the agent never hearing of it;
// with the policy `cardagent policy generate --format chrome-json` writes in
// the managed policy folder, sign-in works with no prompt.
func TestBrowserLocalNetworkAccess(t *testing.T) {
	requireBrowser(t) // skips without Chromium
	p := pcsctest.Require(t)
	client, err := os.ReadFile(filepath.Join("..", "web", "cardagent-client", "cardagent.js"))
	if err != nil {
		t.Fatal(err)
	}
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cardagent.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(client)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>sign in</title><script type="module">
import { connect } from "/cardagent.js";
window.signIn = async (ports, challenge) => {
  try {
    const a = await connect({ ports, reconnect: false });
    const token = await a.authenticate(challenge);
    a.close();
    return { ok: true, token: JSON.stringify(token) };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message };
  }
};
window.lnaState = async () => {
  try { return (await navigator.permissions.query({ name: "local-network-access" })).state; } catch (e) { return "error " + e; }
};
document.body.dataset.ready = "1";
</script><body></body>`)
	}))
	site.TLS = &tls.Config{}
	site.StartTLS()
	t.Cleanup(site.Close)
	pagePort := site.Listener.Addr().(*net.TCPAddr).Port
	origin := fmt.Sprintf("https://localhost:%d", pagePort)

	// The agent: the real card service and a virtual card, on a port of its own.
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{Surname: "LOCAL", Forename: "NETWORK", DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	svc := &agent.CardService{Log: log.Named("cards")}
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(vpiv.DefaultPIN), nil }))
	srv, err := api.New(log.Named("api"), svc, sw, api.Options{Ports: []int{0}, AllowedOrigins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	serveAgent(t, svc.Serve, srv.Serve)
	p.Insert(t, 0, card, vcard.Options{})
	deadline := time.Now().Add(10 * time.Second)
	for svc.Status().Readers == nil || len(svc.Status().Readers) == 0 || svc.Status().Readers[0].Card == nil || svc.Status().Readers[0].Card.State != wire.CardReady {
		if time.Now().After(deadline) {
			t.Fatalf("card not ready: %+v", svc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The policy, as IT would deploy it.
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"allowed_origins": [%q]}`, origin)), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	var out, errb strings.Builder
	if code := cli.Main(context.Background(), []string{"policy", "generate", "--format", "chrome-json", "--config", cfg, "--out", policyFile}, &cli.Env{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("policy generate: exit %d: %s", code, errb.String())
	}
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(policy), origin) {
		t.Fatalf("the policy does not name %s: %s", origin, policy)
	}

	v := &token.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), Challenges: token.NewMemoryStore()}
	type result struct {
		OK      bool   `json:"ok"`
		Token   string `json:"token"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	signIn := func(t *testing.T, browser context.Context, challenge string) (result, string) {
		t.Helper()
		tab, closeTab := chromedp.NewContext(browser)
		defer closeTab()
		run, stop := context.WithTimeout(tab, time.Minute)
		defer stop()
		var r result
		var state string
		await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
		err := chromedp.Run(run,
			chromedp.Navigate(origin+"/"),
			chromedp.WaitReady(`body[data-ready="1"]`, chromedp.ByQuery),
			chromedp.Evaluate(fmt.Sprintf("signIn([%d], %q)", port, challenge), &r, await),
			chromedp.Evaluate("lnaState()", &state, await),
		)
		if err != nil {
			t.Fatal(err)
		}
		return r, state
	}

	t.Run("without policy: local_network_denied", func(t *testing.T) {
		browser := lnaBrowser(t, pagePort, nil)
		sigs, prompts := card.Signatures(), sw.Calls()
		ch, _ := v.NewChallenge()
		r, state := signIn(t, browser, ch)
		if r.OK || r.Code != "local_network_denied" {
			t.Errorf("result %+v, want local_network_denied", r)
		}
		t.Logf("permission after the attempt: %s; message: %s", state, r.Message)
		// Nothing reached the agent: no prompt, no signature.
		if card.Signatures() != sigs || sw.Calls() != prompts {
			t.Error("the agent signed or prompted")
		}
	})

	t.Run("with IT's policy: sign-in works, no prompt", func(t *testing.T) {
		browser := lnaBrowser(t, pagePort, policy)
		ch, _ := v.NewChallenge()
		r, state := signIn(t, browser, ch)
		if !r.OK {
			t.Fatalf("sign-in failed: %+v (permission %s)", r, state)
		}
		tok, err := token.ParseToken([]byte(r.Token))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok, origin, ch); err != nil {
			t.Errorf("token does not verify: %v", err)
		}
		if state != "granted" {
			t.Errorf("permission %q with the policy, want granted", state)
		}
	})
}
