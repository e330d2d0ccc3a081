package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/agent/api"
)

// closedPort returns a loopback port nothing listens on (it was free a moment ago).
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestBrowserConsoleClean: the JS client finds the agent in Chromium without
// filling the page's console. With the agent on the first port of its list
// the console stays empty (the client used to probe every port, twice, and
// Chromium logs each refused connection); with two closed ports before it,
// there is one line for each and nothing more.
func TestBrowserConsoleClean(t *testing.T) {
	browser := requireBrowser(t)
	client, err := os.ReadFile(filepath.Join("..", "web", "cardagent-client", "cardagent.js"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := fmt.Sprintf("http://localhost:%d", l.Addr().(*net.TCPAddr).Port)
	site := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cardagent.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(client)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>console</title><script type="module">
import { connect } from "/cardagent.js";
window.findAgent = async (ports) => {
  const a = await connect({ ports, reconnect: false });
  const port = a.port;
  a.close();
  return port;
};
document.body.dataset.ready = "1";
</script><body></body>`)
	})}
	go site.Serve(l)
	t.Cleanup(func() { site.Close() })

	srv, err := api.New(zaptest.NewLogger(t), idleBackend{}, nil, api.Options{Ports: []int{0}, AllowedOrigins: []string{origin}})
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

	tests := []struct {
		name  string
		ports []int
		lines int // console lines expected
	}{
		{"agent on the first port", append([]int{port}, closedPorts(t, 9)...), 0},
		{"two closed ports first", append(closedPorts(t, 2), port), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, closeTab := chromedp.NewContext(browser)
			defer closeTab()
			var (
				mu    sync.Mutex
				lines []string
			)
			chromedp.ListenTarget(tab, func(ev any) {
				var line string
				switch ev := ev.(type) {
				case *cdplog.EventEntryAdded:
					line = fmt.Sprintf("%s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
				case *runtime.EventConsoleAPICalled:
					line = fmt.Sprintf("console.%s", ev.Type)
				case *runtime.EventExceptionThrown:
					line = "exception: " + ev.ExceptionDetails.Error()
				default:
					return
				}
				mu.Lock()
				lines = append(lines, line)
				mu.Unlock()
			})
			run, stop := context.WithTimeout(tab, time.Minute)
			defer stop()
			var got int
			err := chromedp.Run(run,
				cdplog.Enable(),
				chromedp.Navigate(origin+"/"),
				chromedp.WaitReady(`body[data-ready="1"]`, chromedp.ByQuery),
				chromedp.Evaluate(fmt.Sprintf("findAgent(%s)", jsInts(tt.ports)), &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
					return p.WithAwaitPromise(true)
				}),
			)
			if err != nil {
				t.Fatal(err)
			}
			if got != port {
				t.Errorf("found the agent on %d, want %d", got, port)
			}
			time.Sleep(200 * time.Millisecond) // late log entries
			mu.Lock()
			defer mu.Unlock()
			if len(lines) != tt.lines {
				t.Errorf("%d console lines, want %d:\n%s", len(lines), tt.lines, strings.Join(lines, "\n"))
			}
		})
	}
}

func closedPorts(t *testing.T, n int) []int {
	var out []int
	for len(out) < n {
		out = append(out, closedPort(t))
	}
	return out
}

func jsInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ",") + "]"
}
