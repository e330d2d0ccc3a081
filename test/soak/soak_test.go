//go:build linux

package soak

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

var soakFor = flag.Duration("soak", 40*time.Second, "how long TestSoak cycles cards (bursts of insert/remove every 100 ms, each followed by a settle)")

const origin = "https://signin.soak.test"

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

var creds = sync.OnceValues(func() (*testpki.CardCreds, error) {
	pki, err := testpki.New()
	if err != nil {
		return nil, err
	}
	return pki.IssueCard(testpki.CardSpec{DaysLeft: 400})
})

func newCard(t testing.TB) *vpiv.Card {
	t.Helper()
	c, err := creds()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.New(vpiv.NHSConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	return card
}

// agentUT is the card service and the API server in this process.
type agentUT struct {
	svc  *agent.CardService
	port int
}

func startAgent(t *testing.T, maxConns int) *agentUT {
	t.Helper()
	log := zap.NewNop()
	svc := &agent.CardService{Log: log}
	srv, err := api.New(log, svc, nil, api.Options{Ports: []int{0}, AllowedOrigins: []string{origin}, MaxConnections: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := svc.Serve(ctx); err != nil {
			t.Errorf("card service: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("api: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &agentUT{svc: svc, port: port}
}

// cardEvent is one card event as a client saw it.
type cardEvent struct {
	Reader, Kind, State string
}

func (e cardEvent) String() string {
	return e.Kind + "@" + e.Reader[len(e.Reader)-2:] + "(" + e.State + ")"
}

// client is one page: it records every card event and routes replies.
type client struct {
	c       *websocket.Conn
	done    chan struct{}
	replies chan map[string]any

	mu     sync.Mutex
	events []cardEvent
}

func dial(port int) (*client, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws://127.0.0.1:"+strconv.Itoa(port)+api.PathWS, http.Header{"Origin": {origin}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c := &client{c: conn, done: make(chan struct{}), replies: make(chan map[string]any, 16)}
	go c.read()
	return c, nil
}

func (c *client) read() {
	defer close(c.done)
	for {
		var m map[string]any
		if err := c.c.ReadJSON(&m); err != nil {
			return
		}
		if m["type"] != "event" {
			select {
			case c.replies <- m:
			default:
			}
			continue
		}
		kind, _ := m["event"].(string)
		if !isCardEvent(wire.EventKind(kind)) {
			continue
		}
		ev := cardEvent{Kind: kind}
		ev.Reader, _ = m["reader"].(string)
		if cd, ok := m["card"].(map[string]any); ok {
			ev.State, _ = cd["state"].(string)
		}
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	}
}

func (c *client) close() {
	c.c.Close()
	<-c.done
}

func (c *client) recorded() []cardEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// drop forgets the first n events (checked already), so that what the test
// keeps does not grow with the run and the heap figure is the agent's.
func (c *client) drop(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = slices.Clone(c.events[n:])
}

func (c *client) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = nil
}

// status asks for status and returns each reader's card state ("" for none).
func (c *client) status(id string) (map[string]string, error) {
	if err := c.c.WriteJSON(map[string]any{"id": id, "type": "status"}); err != nil {
		return nil, err
	}
	for {
		select {
		case m := <-c.replies:
			if m["id"] != id {
				continue
			}
			out := map[string]string{}
			rs, _ := m["readers"].([]any)
			for _, r := range rs {
				rm, _ := r.(map[string]any)
				name, _ := rm["name"].(string)
				out[name] = ""
				if cd, ok := rm["card"].(map[string]any); ok {
					out[name], _ = cd["state"].(string)
				}
			}
			return out, nil
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("no status reply")
		}
	}
}

// bench is the physical world: a virtual card per vpcd slot, in or out.
// vpcd accepts a card's connection only at its next poll of an empty slot
// and its listen backlog is tiny, so a connect can take a SYN retransmit
// (1 s); inserts therefore run in the background and a slot with an insert
// pending is left alone until it completes.
type bench struct {
	p     *pcsctest.PCSCD
	cards [2]*vpiv.Card

	mu      sync.Mutex
	slots   [2]*vcard.Slot
	pending [2]bool
	err     error
	wg      sync.WaitGroup
}

func (b *bench) present(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slots[i] != nil
}

// toggle pulls the card in slot i, or starts inserting one; it returns
// false when an insert into i is still pending.
func (b *bench) toggle(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[i] {
		return false
	}
	if s := b.slots[i]; s != nil {
		b.slots[i] = nil
		s.Remove()
		return true
	}
	b.pending[i] = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		s, err := vcard.Insert(b.p.Addr(i), b.cards[i], vcard.Options{})
		b.mu.Lock()
		defer b.mu.Unlock()
		b.pending[i] = false
		if err != nil {
			b.err = err
			return
		}
		b.slots[i] = s
	}()
	return true
}

// wait waits for pending inserts.
func (b *bench) wait(t testing.TB) {
	t.Helper()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		t.Fatalf("inserting a card: %v", b.err)
	}
}

func (b *bench) removeAll() {
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.slots {
		if s != nil {
			s.Remove()
			b.slots[i] = nil
		}
	}
}

// pcscdSees reports whether pcscd itself reports a card in reader i.
func pcscdSees(i int) bool {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return false
	}
	defer ctx.Release()
	st := []scard.ReaderState{{Reader: pcsctest.ReaderNames[i], CurrentState: scard.StateUnaware}}
	if ctx.GetStatusChange(st, 0) != nil {
		return false
	}
	return st[0].EventState&scard.StatePresent != 0
}

// settle waits until the agent's status matches the cards in the readers:
// a ready card where one is in, none where none is. It returns how long that took.
func settle(t *testing.T, a *agentUT, b *bench, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := a.svc.Status()
		ok := st.Service == wire.ServiceUp
		for i, name := range pcsctest.ReaderNames {
			want := ""
			if b.present(i) {
				want = wire.CardReady
			}
			got := ""
			for _, r := range st.Readers {
				if r.Name == name && r.Card != nil {
					got = r.Card.State
				}
			}
			ok = ok && got == want
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("agent status %+v does not match the readers (cards in: %v %v; pcscd sees: %v %v) after %v",
				st, b.present(0), b.present(1), pcscdSees(0), pcscdSees(1), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type memStats struct {
	goroutines     int
	heapInUse, rss uint64
}

func (m memStats) String() string {
	return fmt.Sprintf("%d goroutines, heap in use %.1f MiB, RSS %.1f MiB", m.goroutines, float64(m.heapInUse)/(1<<20), float64(m.rss)/(1<<20))
}

func measure() memStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{goroutines: runtime.NumGoroutine(), heapInUse: ms.HeapInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

// dialAll connects n clients, closed when the test ends.
func dialAll(t *testing.T, port, n int) []*client {
	t.Helper()
	clients := make([]*client, n)
	for i := range clients {
		c, err := dial(port)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		clients[i] = c
		t.Cleanup(c.close)
	}
	return clients
}

func isCardEvent(k wire.EventKind) bool {
	return k == wire.EventCardReading || k == wire.EventCardInserted || k == wire.EventCardRemoved
}

// validNext[a][b]: event b may follow event a for the same reader.
var validNext = map[string]map[string]bool{
	string(wire.EventCardRemoved):  {string(wire.EventCardReading): true, string(wire.EventCardInserted): true},
	string(wire.EventCardReading):  {string(wire.EventCardInserted): true, string(wire.EventCardRemoved): true},
	string(wire.EventCardInserted): {string(wire.EventCardRemoved): true},
}

// TestSoak cycles cards in both readers every 100 ms while 50 clients are
// connected. vpcd polls a slot about every 400 ms, so pcscd coalesces fast
// changes: a card in and out between two polls is never seen, and a card
// pulled before the agent has read it gives card_reading then card_removed
// (docs/protocol.md). The properties that hold whatever coalesces:
//
//   - every client receives exactly the events the card service emitted, in
//     the same order: none missed, none duplicated, none reordered;
//   - per reader the events follow card_reading -> card_inserted or
//     card_removed, card_inserted -> card_removed, card_removed ->
//     card_reading (or card_inserted for a mute card): never two of a kind
//     in a row (one physical change gives at most one event);
//   - after each settle the last state wins: the agent's status and the last
//     event of each reader match the cards actually in the readers;
//   - the number of goroutines and the memory in use do not grow.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skipf("soak: skipped with -short (it cycles cards for -soak=%v)", *soakFor)
	}
	p := pcsctest.Require(t)
	b := &bench{p: p, cards: [2]*vpiv.Card{newCard(t), newCard(t)}}
	t.Cleanup(b.removeAll)
	a := startAgent(t, 0)

	// The card service's own stream of card events: the reference.
	var (
		smu  sync.Mutex
		sent []cardEvent
	)
	unsub := a.svc.Subscribe(func(ev wire.Event) {
		if !isCardEvent(ev.Kind) {
			return
		}
		ce := cardEvent{Reader: ev.Reader, Kind: string(ev.Kind)}
		if ev.Card != nil {
			ce.State = ev.Card.State
		}
		smu.Lock()
		sent = append(sent, ce)
		smu.Unlock()
	})
	defer unsub()

	const nClients = 50
	clients := dialAll(t, a.port, nClients)

	b.toggle(0)
	b.toggle(1)
	b.wait(t)
	settle(t, a, b, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // events of the set-up are delivered
	smu.Lock()
	sent = nil
	smu.Unlock()
	for _, c := range clients {
		c.reset()
	}
	start := measure()
	t.Logf("start: %v", start)

	// last is each reader's last event kind as the agent reported it.
	last := map[string]string{}
	for i, name := range pcsctest.ReaderNames {
		last[name] = string(wire.EventCardRemoved)
		if b.present(i) {
			last[name] = string(wire.EventCardInserted)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		bursts, toggles, checked, dropped int
		settleMax                         time.Duration
	)
	deadline := time.Now().Add(*soakFor)
	for time.Now().Before(deadline) {
		// A burst: 5 to 30 changes, one every 100 ms, in a random reader.
		n := 5 + rng.IntN(26)
		for range n {
			if i := rng.IntN(2); b.toggle(i) || b.toggle(1-i) {
				toggles++
			}
			time.Sleep(100 * time.Millisecond)
		}
		bursts++
		b.wait(t)
		if d := settle(t, a, b, 10*time.Second); d > settleMax {
			settleMax = d
		}

		// Status is set before the event is delivered (the card service
		// dispatches events on a goroutine of its own): under load the
		// stream may lag the status a little. Wait until it shows the
		// readers' state, then check it whole.
		lastOf := func(evs []cardEvent) map[string]string {
			m := maps.Clone(last)
			for _, ev := range evs {
				m[ev.Reader] = ev.Kind
			}
			return m
		}
		caughtUp := func() bool {
			smu.Lock()
			m := lastOf(sent[checked:])
			smu.Unlock()
			for i, name := range pcsctest.ReaderNames {
				if (m[name] == string(wire.EventCardInserted)) != b.present(i) {
					return false
				}
			}
			return true
		}
		for wait := time.Now().Add(5 * time.Second); !caughtUp() && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond)
		}
		smu.Lock()
		ref := slices.Clone(sent[checked:])
		all := len(sent)
		smu.Unlock()
		// Alternation per reader, and the last state wins.
		for _, ev := range ref {
			if !validNext[last[ev.Reader]][ev.Kind] {
				t.Fatalf("burst %d: %s after %s for %s (events %v)", bursts, ev.Kind, last[ev.Reader], ev.Reader, ref)
			}
			if ev.Kind == string(wire.EventCardInserted) && ev.State != wire.CardReady {
				t.Logf("burst %d: card in %s announced %q (pulled while being read)", bursts, ev.Reader, ev.State)
			}
			last[ev.Reader] = ev.Kind
		}
		for i, name := range pcsctest.ReaderNames {
			want := string(wire.EventCardRemoved)
			if b.present(i) {
				want = string(wire.EventCardInserted)
			}
			if last[name] != want {
				t.Fatalf("burst %d: 5 s after the status matched, the last event for %s is still %s, but the reader holds a card: %v", bursts, name, last[name], b.present(i))
			}
		}
		checked = all
		// Every client got exactly the service's events, in order.
		smu.Lock()
		want := slices.Clone(sent)
		smu.Unlock()
		for i, c := range clients {
			cdeadline := time.Now().Add(5 * time.Second)
			for len(c.recorded()) < len(want) && time.Now().Before(cdeadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := c.recorded(); !slices.Equal(got, want) {
				t.Fatalf("burst %d: client %d received %d events, the service sent %d:\n got %v\nwant %v", bursts, i, len(got), len(want), got, want)
			}
		}
		// Forget what is checked on both sides.
		for _, c := range clients {
			c.drop(checked)
		}
		smu.Lock()
		sent = slices.Clone(sent[checked:])
		smu.Unlock()
		dropped += checked
		checked = 0
		// Status over the API matches the readers.
		st, err := clients[bursts%nClients].status("st-" + strconv.Itoa(bursts))
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range pcsctest.ReaderNames {
			if want := map[bool]string{true: wire.CardReady, false: ""}[b.present(i)]; st[name] != want {
				t.Fatalf("burst %d: status says %q for %s, want %q", bursts, st[name], name, want)
			}
		}
	}

	// The same physical state as at the start, then measure again.
	for i := range b.slots {
		if !b.present(i) {
			b.toggle(i)
		}
	}
	b.wait(t)
	settle(t, a, b, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	end := measure()
	smu.Lock()
	nEvents := dropped + len(sent)
	smu.Unlock()
	t.Logf("end: %v", end)
	t.Logf("%d bursts, %d card changes (one every 100 ms), %d events to each of %d clients; slowest settle %v",
		bursts, toggles, nEvents, nClients, settleMax.Round(time.Millisecond))
	if end.goroutines > start.goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", start.goroutines, end.goroutines)
	}
	if grow := int64(end.heapInUse) - int64(start.heapInUse); grow > 4<<20 { // the test keeps only unchecked events: growth is the agent's
		t.Errorf("heap in use grew by %.1f MiB", float64(grow)/(1<<20))
	}
	if nEvents == 0 {
		t.Error("no card events at all: the cycles did not reach the agent")
	}
}

// TestConnectionCap: with 50 clients connected and the default cap of 64,
// 500 more connection attempts at once get exactly 14 connections and 486
// refusals (503); the 50 keep working (status, events); once the extra
// connections close, new ones are accepted again.
func TestConnectionCap(t *testing.T) {
	p := pcsctest.Require(t)
	p.WaitCard(t, 0, false) // no card left by another test
	p.WaitCard(t, 1, false)
	a := startAgent(t, 0) // api.DefaultMaxConnections
	capacity := api.DefaultMaxConnections
	const existing, attempts = 50, 500
	clients := dialAll(t, a.port, existing)

	var (
		mu       sync.Mutex
		extra    []*client
		refused  int
		failures []string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(a.port)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				extra = append(extra, c)
			case strings.Contains(err.Error(), "HTTP 503"):
				refused++
			default:
				failures = append(failures, err.Error())
			}
		}()
	}
	wg.Wait()
	t.Logf("%d attempts in %v: %d connected, %d refused with 503, %d other failures",
		attempts, time.Since(start).Round(time.Millisecond), len(extra), refused, len(failures))
	if len(extra) != capacity-existing || refused != attempts-(capacity-existing) || len(failures) != 0 {
		t.Errorf("want %d connected and %d refused; other failures: %q", capacity-existing, attempts-(capacity-existing), failures)
	}

	// The existing clients keep working: status, and an event.
	for i, c := range clients {
		if _, err := c.status("cap-" + strconv.Itoa(i)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	card := newCard(t)
	p.Insert(t, 0, card, vcard.Options{})
	everyone := append(slices.Clone(clients), extra...)
	deadline := time.Now().Add(10 * time.Second)
	inserted := func(c *client) bool {
		return slices.ContainsFunc(c.recorded(), func(ev cardEvent) bool {
			return ev.Kind == string(wire.EventCardInserted) && ev.Reader == pcsctest.ReaderNames[0]
		})
	}
	for i, c := range everyone {
		for !inserted(c) {
			if time.Now().After(deadline) {
				t.Fatalf("client %d got no card_inserted (events %v)", i, c.recorded())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Once the extra connections close, the cap admits new ones.
	for _, c := range extra {
		c.close()
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := dial(a.port)
		if err == nil {
			c.close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after the extra ones closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
