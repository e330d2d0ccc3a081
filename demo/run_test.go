package demo_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/demo"
)

// lineWriter collects output and signals when a line matches.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	re    *regexp.Regexp
	found chan string // receives the first submatch once
	sent  bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := w.re.FindStringSubmatch(w.buf.String()); m != nil && !w.sent {
		w.found <- m[1]
		w.sent = true
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no roots", nil, "no trusted roots"},
		{"pki and roots", []string{"--pki", dir, "--roots", "x"}, "not both"},
		{"extra argument", []string{"--pki", dir, "x"}, `unexpected argument "x"`},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := demo.Run(context.Background(), tt.args, io.Discard, io.Discard, zaptest.NewLogger(t))
			if !errors.Is(err, demo.ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
	if err := demo.Run(context.Background(), []string{"--pki", dir}, io.Discard, io.Discard, zaptest.NewLogger(t)); err == nil || errors.Is(err, demo.ErrUsage) {
		t.Errorf("empty PKI directory: %v", err)
	}
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if err := f.pki.WritePEM(pkiDir); err != nil { // as cardagent-vcard insert --certs-out does
		t.Fatal(err)
	}
	clientFile := filepath.Join(dir, "cardagent.js")
	if err := os.WriteFile(clientFile, []byte("export const marker = 42;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("client file missing", func(t *testing.T) {
		err := demo.Run(context.Background(), []string{"--pki", pkiDir, "--client", filepath.Join(dir, "none.js")}, io.Discard, io.Discard, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), "reading the JS client") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad origin", func(t *testing.T) {
		err := demo.Run(context.Background(), []string{"--pki", pkiDir, "--client", clientFile, "--listen", "127.0.0.1:0", "--origin", "https://localhost:8443/"},
			io.Discard, io.Discard, zaptest.NewLogger(t))
		if !errors.Is(err, demo.ErrUsage) {
			t.Errorf("got %v", err)
		}
	})
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			args := []string{"--listen", "127.0.0.1:0", "--pki", pkiDir, "--client", clientFile}
			if scheme == "http" {
				args = append(args, "--http")
			}
			found := make(chan string, 1)
			out := &lineWriter{re: regexp.MustCompile(`listening on (\S+)\n`), found: found}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- demo.Run(ctx, args, out, io.Discard, zaptest.NewLogger(t)) }()
			var base string
			select {
			case base = <-found:
			case err := <-done:
				cancel()
				t.Fatalf("Run returned %v; output %s", err, out.String())
			case <-time.After(10 * time.Second):
				cancel()
				t.Fatal("no listening line")
			}
			if !strings.HasPrefix(base, scheme+"://127.0.0.1:") {
				t.Errorf("listening on %q", base)
			}
			port := base[strings.LastIndex(base, ":")+1:]
			wantOrigin := scheme + "://localhost:" + port
			if !strings.Contains(out.String(), "at "+wantOrigin+"/") {
				t.Errorf("output %q does not name origin %s", out.String(), wantOrigin)
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			res, err := client.Get(base + "/cardagent.js")
			if err == nil {
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(body) != "export const marker = 42;\n" {
					t.Errorf("/cardagent.js served %q", body)
				}
			} else {
				t.Error(err)
			}
			req, _ := http.NewRequest("POST", base+"/api/challenge", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", wantOrigin)
			if res, err := client.Do(req); err != nil || res.StatusCode != 200 {
				t.Errorf("challenge: %v %v", res, err)
			} else {
				res.Body.Close()
			}
			tr.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

func TestRunFindsDefaultClient(t *testing.T) {
	// From a subdirectory of a tree holding web/cardagent-client/cardagent.js.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "web", "cardagent-client"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(demo.DefaultClientPath)), []byte("export {};\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if err := f.pki.WritePEM(filepath.Join(root, "pki")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	found := make(chan string, 1)
	out := &lineWriter{re: regexp.MustCompile(`JS client (\S+)\n`), found: found}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, []string{"--listen", "127.0.0.1:0", "--http", "--pki", filepath.Join(root, "pki")}, out, io.Discard, zaptest.NewLogger(t))
	}()
	select {
	case got := <-found:
		if want := filepath.Join(root, filepath.FromSlash(demo.DefaultClientPath)); got != want {
			t.Errorf("client %q, want %q", got, want)
		}
	case err := <-done:
		t.Fatalf("Run returned %v: %s", err, out.String())
	case <-time.After(10 * time.Second):
		t.Error("no client line")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
