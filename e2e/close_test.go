package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
)

// idleBackend is a card service with no reader: the close tests need only
// the API server's WebSocket handling.
type idleBackend struct{}

func (idleBackend) Status() wire.Status               { return wire.Status{Service: wire.ServiceUp} }
func (idleBackend) Subscribe(func(wire.Event)) func() { return func() {} }
func (idleBackend) Certificates(context.Context, string) (*wire.CardCertificates, error) {
	return nil, agent.ErrBusy
}
func (idleBackend) AuthenticateCard(context.Context, string, string, string, prompt.Prompter) (*token.Token, error) {
	return nil, agent.ErrBusy
}

// closeCases runs in the page: each case opens a WebSocket, sends one
// message and reports the close event as the browser saw it.
const closeCases = `(async (url, cases) => {
  const out = [];
  for (const c of cases) {
    out.push(await new Promise((resolve) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => { ws.close(); resolve({code: -1, clean: false}); }, 10000);
      ws.onopen = () => {
        if (c.binary) { ws.send(new Uint8Array([1, 2, 3])); return; }
        if (c.size > 0) { ws.send('{"id":1,"type":"status","x":"' + 'a'.repeat(c.size) + '"}'); return; }
        ws.send(c.text);
      };
      ws.onclose = (e) => { clearTimeout(timer); resolve({code: e.code, clean: e.wasClean}); };
    }));
  }
  return out;
})`

type closeCase struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	Binary bool   `json:"binary"`
	Text   string `json:"text"`
	want   int
}

// TestBrowserCloseCodes: every close the agent makes reaches Chromium as a
// clean close with the agent's code. An oversize message is the hard case:
// closing the TCP connection with the rest of the message unread resets it,
// and Chromium then reports 1006.
func TestBrowserCloseCodes(t *testing.T) {
	browser := requireBrowser(t)
	const limit = 16 << 10
	// The page: a blank document at an allowed origin.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := fmt.Sprintf("http://localhost:%d", l.Addr().(*net.TCPAddr).Port)
	site := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>close codes</title>")
	})}
	go site.Serve(l)
	t.Cleanup(func() { site.Close() })

	srv, err := api.New(zaptest.NewLogger(t), idleBackend{}, nil, api.Options{Ports: []int{0}, MaxMessageBytes: limit, AllowedOrigins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	var cases []closeCase
	for _, size := range []int{limit + 1, 20000, 40000, 65536, 100000} {
		for i := 0; i < 5; i++ {
			cases = append(cases, closeCase{Name: fmt.Sprintf("%d bytes", size), Size: size, want: 1009})
		}
	}
	for i := 0; i < 5; i++ {
		cases = append(cases,
			closeCase{Name: "binary", Binary: true, want: 1003},
			closeCase{Name: "not JSON", Text: "not json", want: 1007},
			closeCase{Name: "not an object", Text: "[1]", want: 1008},
		)
	}

	tab, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	if err := chromedp.Run(tab); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	run, stop := context.WithTimeout(tab, 3*time.Minute)
	defer stop()
	arg, _ := json.Marshal(cases)
	url := fmt.Sprintf("ws://127.0.0.1:%d%s", port, api.PathWS)
	var got []struct {
		Code  int  `json:"code"`
		Clean bool `json:"clean"`
	}
	err = chromedp.Run(run,
		chromedp.Navigate(origin+"/"),
		chromedp.Evaluate(fmt.Sprintf("%s(%q, %s)", closeCases, url, arg), &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("%d results for %d cases", len(got), len(cases))
	}
	bad := 0
	for i, c := range cases {
		if got[i].Code != c.want || !got[i].Clean {
			bad++
			t.Errorf("%s: Chromium saw code %d (clean %v), want %d, clean", c.Name, got[i].Code, got[i].Clean, c.want)
		}
	}
	t.Logf("%d of %d closes as Chromium saw them were wrong", bad, len(cases))
}
