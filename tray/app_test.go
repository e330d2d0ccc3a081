package tray

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/trayhost"
	"github.com/cardagent/cardagent/agent/trayhost/trayhosttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// fakeUI records what the app shows.
type fakeUI struct {
	mu       sync.Mutex
	views    []View
	notes    []string
	messages []string
	opened   []string
	openErr  error
}

func (u *fakeUI) Apply(v View) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.views = append(u.views, v)
}

func (u *fakeUI) Notify(title, text string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.notes = append(u.notes, title+": "+text)
	return nil
}

func (u *fakeUI) Message(kind MessageKind, title, text string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.messages = append(u.messages, title+": "+text)
	return nil
}

func (u *fakeUI) Open(target string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.opened = append(u.opened, target)
	return u.openErr
}

func (u *fakeUI) last() View {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.views) == 0 {
		return View{}
	}
	return u.views[len(u.views)-1]
}

func (u *fakeUI) counts() (views, notes, messages int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.views), len(u.notes), len(u.messages)
}

func (u *fakeUI) lastMessage() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.messages) == 0 {
		return ""
	}
	return u.messages[len(u.messages)-1]
}

// linked runs a Host and an App connected by in-memory pipes.
type linked struct {
	ui     *fakeUI
	clicks chan Click
	stop   func()
	appErr chan error
	quit   chan bool
}

func link(t *testing.T, h *trayhost.Host, a *App) *linked {
	t.Helper()
	ar, aw := io.Pipe() // agent -> tray
	tr, tw := io.Pipe() // tray -> agent
	ctx, cancel := context.WithCancel(context.Background())
	l := &linked{ui: &fakeUI{}, clicks: make(chan Click, 4), appErr: make(chan error, 1), quit: make(chan bool, 1)}
	if a.UI == nil {
		a.UI = l.ui
	} else {
		l.ui = a.UI.(*fakeUI)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		q, err := h.Serve(ctx, tr, aw)
		if err != nil {
			t.Errorf("Host.Serve: %v", err)
		}
		l.quit <- q
	}()
	go func() {
		defer wg.Done()
		l.appErr <- a.Run(ctx, ar, tw, l.clicks)
	}()
	l.stop = func() {
		cancel()
		wg.Wait()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *linked) waitState(t *testing.T, want State) View {
	t.Helper()
	var v View
	trayhosttest.WaitFor(t, "tray state "+string(want), 10*time.Second, func() bool {
		v = l.ui.last()
		return v.State == want
	})
	return v
}

func TestAppFollowsStatusAndNotifiesOncePerDay(t *testing.T) {
	b := trayhosttest.NewBackend()
	b.Set(withReaders(nil), "")
	day := time.Date(2025, 11, 21, 9, 0, 0, 0, time.Local)
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return day }
	store := filepath.Join(t.TempDir(), "notified.json")
	debug := filepath.Join(t.TempDir(), "state.json")
	h := &trayhost.Host{Backend: b, Info: func() trayproto.AgentInfo { return trayproto.AgentInfo{RenewalURL: "https://renew.example.nhs.uk"} }}
	a := &App{Tracker: &expiry.Tracker{Store: expiry.FileStore{Path: store}, Now: now}, DebugState: debug}
	l := link(t, h, a)

	l.waitState(t, StateNoCard)
	expiring := readyCard(t, 60)
	b.Set(withReaders(expiring), wire.EventCardInserted)
	v := l.waitState(t, StateAttention)
	if !strings.Contains(v.Tooltip, "expires in 60 days") {
		t.Errorf("tooltip %q", v.Tooltip)
	}
	trayhosttest.WaitFor(t, "the notification", 5*time.Second, func() bool { _, n, _ := l.ui.counts(); return n == 1 })
	if !strings.Contains(l.ui.notes[0], "expires in 60 days") || !strings.Contains(l.ui.notes[0], "https://renew.example.nhs.uk") {
		t.Errorf("notification %q", l.ui.notes[0])
	}
	// Removed and inserted again the same day: no second notification.
	b.Set(withReaders(nil), wire.EventCardRemoved)
	l.waitState(t, StateNoCard)
	b.Set(withReaders(expiring), wire.EventCardInserted)
	l.waitState(t, StateAttention)
	// The next day it may notify again.
	b.Set(withReaders(nil), wire.EventCardRemoved)
	l.waitState(t, StateNoCard)
	if _, n, _ := l.ui.counts(); n != 1 {
		t.Fatalf("%d notifications on one day, want 1", n)
	}
	clockMu.Lock()
	day = day.Add(24 * time.Hour)
	clockMu.Unlock()
	b.Set(withReaders(expiring), wire.EventCardInserted)
	trayhosttest.WaitFor(t, "the next day's notification", 5*time.Second, func() bool { _, n, _ := l.ui.counts(); return n == 2 })

	// The debug state file follows the view.
	raw, err := os.ReadFile(debug)
	if err != nil {
		t.Fatal(err)
	}
	var dv View
	if err := json.Unmarshal(raw, &dv); err != nil || dv.State != StateAttention {
		t.Errorf("debug state %s (%v)", raw, err)
	}
}

// TestAppSessionEnded: the end of a sign-in session (IT's removal policy) is
// a notification, once, even when card events come in the same burst.
func TestAppSessionEnded(t *testing.T) {
	b := trayhosttest.NewBackend()
	b.Set(withReaders(readyCard(t, 400)), "")
	h := &trayhost.Host{Backend: b}
	a := &App{}
	l := link(t, h, a)
	l.waitState(t, StateReady)
	b.Set(withReaders(nil), wire.EventCardRemoved)
	b.Set(withReaders(nil), wire.EventSessionEnded)
	b.Set(withReaders(nil), wire.EventReaderAdded)
	trayhosttest.WaitFor(t, "the notification", 5*time.Second, func() bool { _, n, _ := l.ui.counts(); return n == 1 })
	if !strings.Contains(l.ui.notes[0], "Signed out") || !strings.Contains(l.ui.notes[0], "removed") {
		t.Errorf("notification %q", l.ui.notes[0])
	}
	time.Sleep(200 * time.Millisecond)
	if _, n, _ := l.ui.counts(); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
}

func TestAppChangePINResultInWords(t *testing.T) {
	b := trayhosttest.NewBackend()
	b.Set(withReaders(readyCard(t, 400)), "")
	calls := make(chan prompt.Prompter, 2)
	b.Change = func(ctx context.Context, p prompt.Prompter) error {
		calls <- p
		return &agent.Error{Code: wire.CodeWrongPIN, TriesLeft: 2, Message: "The current PIN was wrong. Your PIN has not been changed. 2 tries left before the card is blocked."}
	}
	marker := &recordingPrompter{}
	h := &trayhost.Host{Backend: b, Prompter: marker}
	l := link(t, h, &App{})
	l.waitState(t, StateReady)
	l.clicks <- ClickChangePIN
	select {
	case p := <-calls:
		if p != marker {
			t.Error("the change used another prompter than the agent's")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("change PIN request did not reach the backend")
	}
	trayhosttest.WaitFor(t, "the result message", 5*time.Second, func() bool { return l.ui.lastMessage() != "" })
	if m := l.ui.lastMessage(); !strings.Contains(m, "2 tries left before the card is blocked") || !strings.HasPrefix(m, "Change PIN: ") {
		t.Errorf("message %q", m)
	}
}

type recordingPrompter struct{}

func (*recordingPrompter) PIN(context.Context, prompt.Request) ([]byte, error) {
	return nil, prompt.ErrCancelled
}

func TestAppMenuActions(t *testing.T) {
	b := trayhosttest.NewBackend()
	b.Set(withReaders(readyCard(t, 400)), "")
	h := &trayhost.Host{Backend: b, Info: func() trayproto.AgentInfo {
		return trayproto.AgentInfo{Version: "9.9", APIPort: 43801, RenewalURL: "https://renew.example.nhs.uk", Environment: "live"}
	}}
	dir := t.TempDir()
	a := &App{ReportDir: dir, Diagnostics: func(context.Context) ([]byte, error) { return nil, errors.New("no doctor") }}
	l := link(t, h, a)
	l.waitState(t, StateReady)

	l.clicks <- ClickRenew
	trayhosttest.WaitFor(t, "the renewal page", 5*time.Second, func() bool { l.ui.mu.Lock(); defer l.ui.mu.Unlock(); return len(l.ui.opened) == 1 })
	if l.ui.opened[0] != "https://renew.example.nhs.uk" {
		t.Errorf("opened %q", l.ui.opened[0])
	}

	l.clicks <- ClickAbout
	trayhosttest.WaitFor(t, "About", 5*time.Second, func() bool { return strings.Contains(l.ui.lastMessage(), "cardagent 9.9") })
	if m := l.ui.lastMessage(); !strings.Contains(m, "port 43801") || !strings.Contains(m, "Smartcard ready") {
		t.Errorf("About says %q", m)
	}

	l.clicks <- ClickDiagnostics
	report := filepath.Join(dir, "cardagent-diagnostics.txt")
	trayhosttest.WaitFor(t, "the diagnostics report", 5*time.Second, func() bool { l.ui.mu.Lock(); defer l.ui.mu.Unlock(); return len(l.ui.opened) == 2 })
	if l.ui.opened[1] != report {
		t.Errorf("opened %q, want %q", l.ui.opened[1], report)
	}
	raw, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(raw), `"state": "ready"`) || !strings.Contains(string(raw), "Virtual PCD 00 00") {
		t.Errorf("fallback report (status JSON): %s %v", raw, err)
	}
}

func TestAppQuit(t *testing.T) {
	b := trayhosttest.NewBackend()
	h := &trayhost.Host{Backend: b}
	l := link(t, h, &App{})
	l.waitState(t, StateNoReader)
	l.clicks <- ClickQuit
	select {
	case err := <-l.appErr:
		if err != nil {
			t.Fatalf("app: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app did not end on Quit")
	}
	select {
	case q := <-l.quit:
		if !q {
			t.Error("the host did not report the quit request")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host did not end after the tray quit")
	}
}

func TestAppQuitHiddenByPolicyIsIgnored(t *testing.T) {
	b := trayhosttest.NewBackend()
	h := &trayhost.Host{Backend: b, Info: func() trayproto.AgentInfo { return trayproto.AgentInfo{HideQuit: true} }}
	l := link(t, h, &App{})
	v := l.waitState(t, StateNoReader)
	if v.Menu.Quit.Visible {
		t.Fatal("Quit visible")
	}
	l.clicks <- ClickQuit
	select {
	case <-l.appErr:
		t.Fatal("the app ended on a hidden Quit")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestAppEndsWhenTheAgentGoes(t *testing.T) {
	ar, aw := io.Pipe()
	tr, tw := io.Pipe()
	defer tr.Close()
	go func() { _, _ = io.Copy(io.Discard, tr) }()
	done := make(chan error, 1)
	a := &App{UI: &fakeUI{}, Log: zap.NewNop()}
	go func() { done <- a.Run(context.Background(), ar, tw, nil) }()
	aw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("err %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tray kept running without its agent")
	}
}
