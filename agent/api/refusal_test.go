package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefusalFloodLog: hundreds of refused requests with 6000-byte paths
// leave a bounded number of short log lines, and every refusal closes its
// connection (Connection: close).
func TestRefusalFloodLog(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{}, allowPeer)
	long := "/" + strings.Repeat("A", 6000)
	const n = 300
	for i := range n {
		c, err := net.Dial("tcp", ts.host())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nOrigin: https://evil.example\r\n\r\n", long, ts.host())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusForbidden || !resp.Close {
			t.Fatalf("request %d: %d, Connection: close %v", i, resp.StatusCode, resp.Close)
		}
		resp.Body.Close()
		c.Close()
	}
	lines := ts.logs.FilterMessage("request refused").All()
	if len(lines) == 0 || len(lines) > refusalLinesPerWindow {
		t.Fatalf("%d refusal lines for %d refusals, want 1..%d", len(lines), n, refusalLinesPerWindow)
	}
	for _, l := range lines {
		if p := l.ContextMap()["path"].(string); len(p) > maxLoggedLen+32 || !strings.Contains(p, "6001 bytes") {
			t.Fatalf("logged path of %d bytes: %.80q", len(p), p)
		}
	}
}

func TestRefusalLogWindow(t *testing.T) {
	var r refusalLog
	t0 := time.Unix(1000, 0)
	for i := range refusalLinesPerWindow {
		if ok, d := r.add(t0.Add(time.Duration(i) * time.Millisecond)); !ok || d != 0 {
			t.Fatalf("refusal %d: log %v dropped %d", i, ok, d)
		}
	}
	for range 50 {
		if ok, _ := r.add(t0.Add(time.Second)); ok {
			t.Fatal("logged past the window's limit")
		}
	}
	if ok, d := r.add(t0.Add(refusalWindow)); !ok || d != 50 {
		t.Fatalf("next window: log %v dropped %d, want true 50", ok, d)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("short"); got != "short" {
		t.Fatal(got)
	}
	s := strings.Repeat("é", 100) // 200 bytes
	got := truncate(s)
	if !strings.HasPrefix(got, strings.Repeat("é", 64)+"…") || !strings.HasSuffix(got, "(200 bytes)") {
		t.Fatalf("%q", got)
	}
}
