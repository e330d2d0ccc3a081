package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// TestRunSignIn runs `cardagent run` with a configuration file and the
// scripted pinentry, and signs in over the WebSocket with the virtual card
// through pcscd.
func TestRunSignIn(t *testing.T) {
	p := pcsctest.Require(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "scripted")
	build := exec.Command("go", "build", "-o", bin, "./testdata/pinentry/scripted")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the scripted pinentry: %v\n%s", err, out)
	}
	const pin = "582901"
	t.Setenv("SCRIPTED_PINENTRY_PIN", pin)

	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{DaysLeft: 400}, func(c *vpiv.Config) { c.PIN = pin })
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 0, card, vcard.Options{})

	const origin = "https://signin.example.test"
	// Private ports for the API and the Credential Management endpoint,
	// never the defaults a developer's own agent listens on.
	ports := pcsctest.FreePorts(t, 2)
	port := ports[0]
	cfg := filepath.Join(dir, "config.json")
	conf := fmt.Sprintf(`{"listen": {"port": %d, "port_range": 1}, "credential_management": {"ports": [%d]}, "allowed_origins": [%q], "log": {"level": "debug"}}`, port, ports[1], origin)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	logDir := filepath.Join(dir, "logs")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr pcsctest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"run", "--config", cfg, "--pinentry", bin, "--log-dir", logDir}, &cli.Env{Stdout: &stderr, Stderr: &stderr})
	}()

	// Wait for the API and the card.
	var c *websocket.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		c, _, err = (&websocket.Dialer{}).Dial(fmt.Sprintf("ws://127.0.0.1:%d/cardagent/v1/ws", port), http.Header{"Origin": {origin}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not reachable: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	checkNoCoreDumps(t) // run made the process not dumpable
	call := func(req map[string]any) map[string]any {
		t.Helper()
		if err := c.WriteJSON(req); err != nil {
			t.Fatal(err)
		}
		for {
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			var m map[string]any
			if err := c.ReadJSON(&m); err != nil {
				t.Fatalf("reading: %v\n%s", err, stderr.String())
			}
			if m["type"] != "event" {
				return m
			}
		}
	}
	for {
		m := call(map[string]any{"id": 1, "type": "status"})
		rs, _ := m["readers"].([]any)
		if len(rs) > 0 {
			if cd, _ := rs[0].(map[string]any)["card"].(map[string]any); cd != nil && cd["state"] == "ready" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("card not ready: %v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}

	store := token.NewMemoryStore()
	v := &token.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), Challenges: store}
	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	m := call(map[string]any{"id": 2, "type": "authenticate", "challenge": ch})
	raw, _ := json.Marshal(m["token"])
	tok, err := token.ParseToken(raw)
	if err != nil {
		t.Fatalf("reply %v: %v\n%s", m, err, stderr.String())
	}
	if _, err := v.Verify(tok, origin, ch); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(tok.Certificate); err != nil {
		t.Errorf("certificate: %v", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Errorf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cardagent run did not stop")
	}
	logs := stderr.String()
	for _, want := range []string{fmt.Sprintf(`"port":%d`, port), origin, "pinentry", "authenticated"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, pin) {
		t.Errorf("the PIN is in the log:\n%s", logs)
	}
	// The rotated JSON log file holds the same events, and no PIN either.
	file, err := os.ReadFile(filepath.Join(logDir, "cardagent.log"))
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	if !strings.Contains(string(file), "authenticated") || !strings.Contains(string(file), `"level":"debug"`) {
		t.Errorf("log file lacks the sign-in or the debug level:\n%s", file)
	}
	if strings.Contains(string(file), pin) {
		t.Errorf("the PIN is in the log file:\n%s", file)
	}
}

// TestRunNoOrigins: with no allowed origin the agent still starts, and says so loudly.
func TestRunNoOrigins(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	ports := pcsctest.FreePorts(t, 2)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"listen": {"port": %d, "port_range": 1}, "credential_management": {"ports": [%d]}}`, ports[0], ports[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out pcsctest.Buffer
	code := cli.Main(ctx, []string{"run", "--config", cfg, "--pinentry", filepath.Join(dir, "missing"), "--log-dir", "none"}, &cli.Env{Stdout: &out, Stderr: &out})
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{"NO ALLOWED ORIGINS", "no PIN prompt available"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}
