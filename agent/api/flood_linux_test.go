package api

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/peer"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rssBytes is this process's resident memory.
func rssBytes(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestFloodFromOtherUser: another OS user (nobody) floods the agent with
// connections it must refuse and tries to hold thousands of them open,
// while the real user signs in through the real card service, pcscd and
// the virtual card. The agent's descriptors and memory stay bounded, and
// every sign-in succeeds.
func TestFloodFromOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	p := pcsctest.Require(t)
	card, pki := e2eCard(t)
	instant := prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(markerPIN), nil })
	a := startAgent(t, instant, Options{})
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	v := newVerifier(t, pki)

	// The flooder: this test binary, copied where nobody can run it.
	dir, err := os.MkdirTemp("", "cardagent-flood-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "flood")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	baseFDs, baseRSS := openFDs(t), rssBytes(t)

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{"CARDAGENT_TEST_FLOOD_ADDRS=127.0.0.1:" + itoa(a.ts.port) + " [::1]:" + itoa(a.ts.port)}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int64
	var readDone sync.WaitGroup
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "dials "); ok {
				d, _ := strconv.ParseInt(n, 10, 64)
				dials.Store(d)
			}
		}
	}()
	stop := func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			readDone.Wait()
		}
	}
	defer stop()

	// Sample descriptors and memory while the flood runs.
	var maxFDs int
	var maxRSS int64
	sampled := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			maxFDs, maxRSS = max(maxFDs, openFDs(t)), max(maxRSS, rssBytes(t))
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// Let the flood build up, then sign in a few times, each on a new connection.
	waitFor := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for dials.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the flood made only %d connections", dials.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(3000)
	var signIn []time.Duration
	for i := range 3 {
		t0 := time.Now()
		c := a.client(t, goodOrigin)
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		m := c.authenticate(t, i, ch)
		if m["error"] != nil {
			t.Fatalf("sign-in %d during the flood: %v", i, m)
		}
		if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
			t.Fatalf("sign-in %d: token does not verify: %v", i, err)
		}
		signIn = append(signIn, time.Since(t0))
		c.c.Close()
	}
	waitFor(dials.Load() + 2000) // the flood goes on; let it hold what it can
	close(quit)
	<-sampled
	total := dials.Load()
	stop()

	t.Logf("flood: %d connections by nobody; agent descriptors %d -> max %d, RSS %d -> max %d MiB; sign-ins %v",
		total, baseFDs, maxFDs, baseRSS>>20, maxRSS>>20, signIn)
	// Bound: the checks in flight, two listeners (IPv4, IPv6) of
	// DefaultMaxPendingChecks each, every one holding the connection and
	// its netlink socket; and a few of our own.
	if limit := baseFDs + 2*2*DefaultMaxPendingChecks + 32; maxFDs > limit {
		t.Errorf("descriptors reached %d during the flood (from %d), bound %d", maxFDs, baseFDs, limit)
	}
	if grew := maxRSS - baseRSS; grew > 48<<20 {
		t.Errorf("resident memory grew by %d MiB during the flood, bound 48 MiB", grew>>20)
	}
	for _, line := range a.logs.FilterMessage("connection from another user or an unknown process refused").All() {
		if !strings.Contains(line.ContextMap()["error"].(string), "uid 65534") {
			t.Errorf("refusal logged for %v", line.ContextMap())
		}
	}
	if n := len(a.logs.FilterMessage("connection from another user or an unknown process refused").All()); n > 2*(1+int(time.Minute/peer.RefusalLogInterval)) {
		t.Errorf("%d refusal lines logged: not aggregated", n)
	}
}
