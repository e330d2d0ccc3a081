package tray

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/safetext"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// Click is a menu item the user chose.
type Click string

const (
	ClickRenew       Click = "renew"
	ClickChangePIN   Click = "change_pin"
	ClickUnblock     Click = "unblock"
	ClickDiagnostics Click = "diagnostics"
	ClickAbout       Click = "about"
	ClickQuit        Click = "quit"
)

// MessageKind is the look of a message box.
type MessageKind int

const (
	MessageInfo MessageKind = iota
	MessageWarning
	MessageError
)

// UI is what the tray app drives: the notification-area icon and menu, and
// the desktop's message boxes, notifications and opener. The systray
// implementation is in tray/trayui; tests use a fake.
type UI interface {
	// Apply shows v: icon, tooltip, menu.
	Apply(v View)
	// Notify shows a desktop notification.
	Notify(title, text string) error
	// Message shows a message box and returns when it is closed.
	Message(kind MessageKind, title, text string) error
	// Open opens a URL or a file with the desktop's default program.
	Open(target string) error
}

// noStatusAfter is how long the app waits for the agent's first status
// before it shows the agent-problem state.
const noStatusAfter = 10 * time.Second

// App is the tray process's logic: it turns the agent's messages into
// views and notifications, and menu clicks into requests and actions.
type App struct {
	Log *zap.Logger
	UI  UI
	// Tracker limits expiry notifications to once a day per card; nil
	// notifies at every insertion.
	Tracker *expiry.Tracker
	// DebugState, when set, is a file rewritten with the current View as
	// JSON at every change (for tests and support: CARDAGENT_TRAY_DEBUG_STATE).
	DebugState string
	// Diagnostics produces the diagnostics report (`cardagent doctor`); nil
	// or failing: the agent's status as JSON is shown instead.
	Diagnostics func(ctx context.Context) ([]byte, error)
	// ReportDir is where the diagnostics report is written; "" means the
	// user's cache directory.
	ReportDir string

	in      Input
	view    View
	applied bool
	nextID  int64
	pending map[int64]Click
	conn    *trayproto.Conn
	bg      chan struct{} // running message boxes and reports (bounded)
}

// Run serves the tray until the agent closes the channel (nil), the user
// quits (nil), or ctx ends. It closes r and w.
func (a *App) Run(ctx context.Context, r io.ReadCloser, w io.WriteCloser, clicks <-chan Click) error {
	if a.Log == nil {
		a.Log = zap.NewNop()
	}
	a.conn = trayproto.NewConn(r, w)
	a.pending = map[int64]Click{}
	a.bg = make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	context.AfterFunc(ctx, func() {
		_ = r.Close()
		_ = w.Close()
	})

	msgs := make(chan trayproto.Message)
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := a.conn.Read()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	noStatus := time.NewTimer(noStatusAfter)
	defer noStatus.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				a.Log.Info("the agent closed the channel; the tray exits")
				return nil
			}
			return fmt.Errorf("reading from the agent: %w", err)
		case <-noStatus.C:
			if !a.in.Connected {
				a.show(Input{Problem: "the cardagent service does not answer"})
			}
		case m := <-msgs:
			a.handle(ctx, m)
		case c := <-clicks:
			if done := a.click(ctx, c); done {
				return nil
			}
		}
	}
}

func (a *App) handle(ctx context.Context, m trayproto.Message) {
	switch m.Type {
	case trayproto.TypeStatus:
		if m.Status == nil {
			return
		}
		in := Input{Connected: true, Status: *m.Status, Agent: a.in.Agent}
		if m.Agent != nil {
			in.Agent = *m.Agent
		}
		a.show(in)
		a.notify()
		if m.Event == wire.EventSessionEnded {
			a.notifySessionEnded()
		}
	case trayproto.TypeResult:
		click, ok := a.pending[m.ID]
		if !ok {
			return
		}
		delete(a.pending, m.ID)
		title := "Change PIN"
		if click == ClickUnblock {
			title = "Unblock card"
		}
		switch {
		case m.OK && click == ClickChangePIN:
			a.message(ctx, MessageInfo, title, "Your PIN has been changed. Use the new PIN from now on.")
		case m.OK && click == ClickUnblock:
			a.message(ctx, MessageInfo, title, "Your card is unblocked and has its new PIN.")
		case m.Error != nil && m.Error.Code == "user_cancelled":
			// The user cancelled the dialog: nothing to say.
		case m.Error != nil:
			a.message(ctx, MessageError, title, m.Error.Message)
		}
	}
}

// show builds and applies the view when it changed.
func (a *App) show(in Input) {
	a.in = in
	v := Build(in)
	if a.applied && reflect.DeepEqual(v, a.view) {
		return
	}
	a.view, a.applied = v, true
	a.UI.Apply(v)
	a.Log.Debug("tray state", zap.String("state", string(v.State)), zap.String("tooltip", v.Tooltip))
	if a.DebugState != "" {
		if err := writeJSONFile(a.DebugState, v); err != nil {
			a.Log.Warn("writing the debug state", zap.Error(err))
		}
	}
}

// notify shows the expiry notification for the current card, at most once
// a day per card.
func (a *App) notify() {
	c := a.view.Card
	if c == nil || c.Notice == "" || c.ID == "" {
		return
	}
	if a.Tracker != nil {
		due, err := a.Tracker.Due(c.ID)
		if err != nil {
			a.Log.Warn("expiry notification state", zap.Error(err))
		}
		if !due {
			return
		}
	}
	title := "Smartcard certificate expiring"
	if c.Expiry.Level == expiry.Expired {
		title = "Smartcard certificate expired"
	}
	if err := a.UI.Notify(title, safetext.Line(c.Notice, 512)); err != nil {
		a.Log.Warn("desktop notification failed", zap.Error(err))
	}
}

// notifySessionEnded says why the user was signed out: IT's removal policy
// ended the sign-in session of the card that was taken out.
func (a *App) notifySessionEnded() {
	if err := a.UI.Notify("Signed out", "The smartcard you signed in with was removed, so the sites you signed in to were told to sign you out. Insert it and sign in again to go on."); err != nil {
		a.Log.Warn("desktop notification failed", zap.Error(err))
	}
}

// click acts on a menu choice; it reports whether the tray should end.
func (a *App) click(ctx context.Context, c Click) bool {
	switch c {
	case ClickRenew:
		url := a.in.Agent.RenewalURL
		if url == "" {
			a.message(ctx, MessageWarning, "Renew certificate", "No renewal page is configured for this computer. Ask your IT service desk how to renew your smartcard certificate.")
			return false
		}
		if err := a.UI.Open(url); err != nil {
			a.Log.Warn("opening the renewal page", zap.Error(err))
			a.message(ctx, MessageError, "Renew certificate", "The renewal page could not be opened. Open "+url+" in your browser.")
		}
	case ClickChangePIN, ClickUnblock:
		for _, p := range a.pending {
			if p == ClickChangePIN || p == ClickUnblock {
				return false // one at a time: its dialog is already open
			}
		}
		action := trayproto.ActionChangePIN
		if c == ClickUnblock {
			action = trayproto.ActionUnblockPIN
		}
		a.request(action, c)
	case ClickDiagnostics:
		a.background(ctx, func(ctx context.Context) { a.diagnostics(ctx) })
	case ClickAbout:
		a.message(ctx, MessageInfo, "About cardagent", a.about())
	case ClickQuit:
		if a.in.Agent.HideQuit {
			return false
		}
		a.request(trayproto.ActionQuit, c)
		return true
	}
	return false
}

func (a *App) request(action string, c Click) {
	a.nextID++
	a.pending[a.nextID] = c
	if err := a.conn.Write(trayproto.Message{Type: trayproto.TypeRequest, ID: a.nextID, Action: action}); err != nil {
		a.Log.Warn("sending a request to the agent", zap.String("action", action), zap.Error(err))
	}
}

// message shows a message box without holding up the app.
func (a *App) message(ctx context.Context, kind MessageKind, title, text string) {
	a.background(ctx, func(context.Context) {
		if err := a.UI.Message(kind, title, text); err != nil {
			a.Log.Warn("message box failed", zap.String("title", title), zap.Error(err))
		}
	})
}

// background runs fn on its own goroutine, at most cap(a.bg) at a time.
func (a *App) background(ctx context.Context, fn func(context.Context)) {
	select {
	case a.bg <- struct{}{}:
	default:
		a.Log.Debug("too many dialogs open; ignored")
		return
	}
	go func() {
		defer func() { <-a.bg }()
		fn(ctx)
	}()
}

func (a *App) about() string {
	ag := a.in.Agent
	lines := []string{
		"cardagent " + ag.Version,
		"Open-source smartcard agent for NHS smartcard sign-in.",
		"",
	}
	if ag.APIPort > 0 {
		lines = append(lines, fmt.Sprintf("Sign-in service: listening on port %d (this computer only)", ag.APIPort))
	}
	if ag.Environment != "" {
		lines = append(lines, "Environment: "+ag.Environment)
	}
	if ag.PromptBackend != "" {
		lines = append(lines, "PIN prompts: "+ag.PromptBackend)
	}
	lines = append(lines, "Status: "+a.view.Menu.Status)
	return strings.Join(lines, "\n")
}

// diagnostics runs the diagnostics report and opens it.
func (a *App) diagnostics(ctx context.Context) {
	var report []byte
	var err error
	if a.Diagnostics != nil {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		report, err = a.Diagnostics(dctx)
		cancel()
	}
	if a.Diagnostics == nil || err != nil {
		if err != nil {
			a.Log.Info("diagnostics command unavailable; showing the status instead", zap.Error(err))
		}
		report = a.statusReport()
	}
	dir := a.ReportDir
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "cardagent")
		} else {
			dir = os.TempDir()
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		a.Log.Warn("diagnostics directory", zap.Error(err))
		return
	}
	p := filepath.Join(dir, "cardagent-diagnostics.txt")
	if err := os.WriteFile(p, report, 0o600); err != nil {
		a.Log.Warn("writing diagnostics", zap.Error(err))
		return
	}
	if err := a.UI.Open(p); err != nil {
		a.Log.Warn("opening diagnostics", zap.Error(err))
		_ = a.UI.Message(MessageInfo, "cardagent diagnostics", "The diagnostics report is in "+p)
	}
}

// statusReport is the fallback diagnostics: the agent's status and facts as JSON.
func (a *App) statusReport() []byte {
	b, _ := json.MarshalIndent(struct {
		Generated string              `json:"generated"`
		View      View                `json:"tray"`
		Agent     trayproto.AgentInfo `json:"agent"`
		Status    any                 `json:"status"`
	}{time.Now().UTC().Format(time.RFC3339), a.view, a.in.Agent, a.in.Status}, "", "  ")
	return append(b, '\n')
}

// writeJSONFile writes v atomically.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
