//go:build traygui && linux

// The screenshot test runs the real tray program, cardagent-tray (systray,
// GTK; built by the test), under Xvfb with a real tray host, and the real
// PIN dialog (zenity). scripts/tray-screenshots sets up the display, the
// D-Bus session and the tray host, then runs:
//
//	go test -tags traygui -run TestTrayScreenshots ./tray/ -args -screenshots DIR -tray-region WxH+X+Y

package tray

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/trayhost"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/tray/trayproto"
	"github.com/cardagent/cardagent/version"
)

var (
	screenshotDir = flag.String("screenshots", "", "directory for the PNGs (required)")
	trayRegion    = flag.String("tray-region", "160x32+864+0", "where the tray host sits on the screen: WxH+X+Y")
)

// switchable is the card service, whose status the test can replace (a
// session with no reader at all cannot be made with vpcd, which always has
// its two readers).
type switchable struct {
	*agent.CardService
	mu       sync.Mutex
	override *wire.Status
}

func (s *switchable) Status() wire.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.override != nil {
		return *s.override
	}
	return s.CardService.Status()
}

func (s *switchable) set(st *wire.Status) {
	s.mu.Lock()
	s.override = st
	s.mu.Unlock()
}

func TestTrayScreenshots(t *testing.T) {
	if *screenshotDir == "" || os.Getenv("DISPLAY") == "" {
		t.Skip("run through scripts/tray-screenshots (needs -screenshots DIR and a display with a tray host)")
	}
	var rw, rh, rx, ry int
	if _, err := fmt.Sscanf(*trayRegion, "%dx%d+%d+%d", &rw, &rh, &rx, &ry); err != nil {
		t.Fatalf("-tray-region %q: %v", *trayRegion, err)
	}
	region := image.Rect(rx, ry, rx+rw, ry+rh)
	if err := os.MkdirAll(*screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pd := pcsctest.Require(t)
	log, _ := zap.NewDevelopment()
	svc := &agent.CardService{Log: log, PINPolicy: config.Default().PIN}
	backend := &switchable{CardService: svc}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = svc.Serve(ctx)
	}()

	dir := t.TempDir()
	debugState := filepath.Join(dir, "tray-state.json")
	dialog := &prompt.Dialog{Log: log, Policy: config.Default().PIN, Timeout: time.Minute}
	trayExe := buildTray(t, dir)
	sup := &trayhost.TraySupervisor{
		Log: log,
		Host: &trayhost.Host{Log: log, Backend: backend, Prompter: dialog, Refresh: 200 * time.Millisecond,
			Info: func() trayproto.AgentInfo {
				return trayproto.AgentInfo{Version: version.Version, APIPort: 43800, RenewalURL: "https://renew.example.nhs.uk", Environment: "training", PromptBackend: "desktop dialog"}
			}},
		Command: func() *exec.Cmd {
			cmd := exec.Command(trayExe, "--log-level", "debug")
			cmd.Env = append(os.Environ(), EnvDebugState+"="+debugState, "XDG_STATE_HOME="+dir)
			return cmd
		},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sup.Serve(ctx)
	}()

	crops := map[string]*image.NRGBA{}
	n := 0
	shoot := func(name string) *image.NRGBA {
		t.Helper()
		n++
		time.Sleep(700 * time.Millisecond) // let the tray host repaint
		p := filepath.Join(*screenshotDir, fmt.Sprintf("%02d-%s.png", n, name))
		img := screenshot(t, p)
		return crop(img, region)
	}
	// expect waits for the tray's state model (its debug state file) to
	// show state with tooltip, screenshots it, and checks the icon region.
	expect := func(name string, state State, tooltip string) {
		t.Helper()
		v := waitDebugState(t, debugState, state)
		if !strings.Contains(v.Tooltip, tooltip) {
			t.Errorf("%s: tooltip %q lacks %q", name, v.Tooltip, tooltip)
		}
		c := shoot(name)
		if !notBlank(c) {
			t.Errorf("%s: the tray region is blank", name)
		}
		if _, seen := crops[string(state)]; !seen {
			crops[string(state)] = c
		}
	}
	insert := func(days int, adjust func(*vpiv.Config)) *vcard.Slot {
		return pd.Insert(t, 0, nhsCard(t, days, adjust), vcard.Options{})
	}

	expect("no-card", StateNoCard, "No smartcard inserted")
	slot := insert(400, nil)
	expect("ready", StateReady, "Smartcard ready (Mary SMITH)")
	openMenu(t, region)
	shoot("ready-menu")
	closeMenu()
	_ = slot.Remove()
	expect("removed", StateNoCard, "No smartcard inserted")

	slot = insert(60, nil)
	expect("attention-expiring", StateAttention, "Certificate expires in 59 days")
	openMenu(t, region)
	shoot("attention-menu")
	closeMenu()
	_ = slot.Remove()
	expect("removed", StateNoCard, "No smartcard")

	slot = insert(-1, nil)
	expect("blocked-expired", StateBlocked, "Certificate expired")
	_ = slot.Remove()
	expect("removed", StateNoCard, "No smartcard")

	slot = insert(400, func(c *vpiv.Config) { c.PINTriesLeft = -1 })
	expect("blocked-pin", StateBlocked, "Card blocked")
	_ = slot.Remove()
	expect("removed", StateNoCard, "No smartcard")

	// The PIN dialog of a sign-in, after one wrong PIN: origin, holder, 2 tries left.
	card := nhsCard(t, 400, nil)
	slot = pd.Insert(t, 0, card, vcard.Options{})
	expect("ready", StateReady, "ready")
	if _, err := svc.Authenticate(ctx, e2eOrigin, e2eChallenge, answer("000000")); err == nil {
		t.Fatal("wrong PIN accepted")
	}
	type authResult struct {
		err error
	}
	done := make(chan authResult, 1)
	go func() {
		tok, err := svc.Authenticate(ctx, e2eOrigin, e2eChallenge, dialog)
		if err == nil {
			verify(t, tok)
		}
		done <- authResult{err}
	}()
	waitWindow(t, "cardagent: PIN")
	shoot("pin-dialog")
	xdotool(t, "type", "--delay", "30", "12")
	xdotool(t, "key", "Return")
	time.Sleep(500 * time.Millisecond)
	waitWindow(t, "cardagent: PIN")
	shoot("pin-dialog-format-error")
	xdotool(t, "type", "--delay", "30", markerPIN)
	xdotool(t, "key", "Return")
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("sign-in through the dialog: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sign-in did not finish")
	}
	if card.PINTries() != 3 {
		t.Errorf("tries %d after the format error and the right PIN, want 3", card.PINTries())
	}
	_ = slot.Remove()
	expect("removed", StateNoCard, "No smartcard")

	backend.set(&wire.Status{Service: wire.ServiceUp, ExpiryWarningDays: 90})
	expect("no-reader", StateNoReader, "No smart-card reader")
	backend.set(nil)
	expect("readers-back", StateNoCard, "No smartcard")

	pd.Kill()
	expect("agent-problem-no-service", StateAgentProblem, "smart-card service is not running")
	if err := pd.Restart(); err != nil {
		t.Fatal(err)
	}
	expect("service-back", StateNoCard, "No smartcard")

	// Every state has its own look.
	for _, a := range States {
		ca, ok := crops[string(a)]
		if !ok {
			t.Errorf("no screenshot of state %s", a)
			continue
		}
		for _, b := range States {
			if a >= b {
				continue
			}
			if cb, ok := crops[string(b)]; ok && differing(ca, cb) < 20 {
				t.Errorf("the tray looks the same in states %s and %s", a, b)
			}
		}
	}
	if sup.Starts() != 1 {
		t.Errorf("the tray was started %d times", sup.Starts())
	}
}

// buildTray builds cmd/cardagent-tray, the program the packages ship, into dir.
func buildTray(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, trayproto.TrayProgram)
	cmd := exec.Command("go", "build", "-o", exe, "github.com/cardagent/cardagent/cmd/cardagent-tray")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cardagent-tray: %v\n%s", err, out)
	}
	return exe
}

func waitDebugState(t *testing.T, path string, want State) View {
	t.Helper()
	var v View
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &v) == nil && v.State == want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tray never showed state %s (last: %s %q)", want, v.State, v.Tooltip)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func screenshot(t *testing.T, path string) *image.NRGBA {
	t.Helper()
	out, err := exec.Command("import", "-window", "root", path).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n := image.NewNRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			n.Set(x, y, img.At(x, y))
		}
	}
	return n
}

func crop(img *image.NRGBA, r image.Rectangle) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			out.SetNRGBA(x, y, img.NRGBAAt(r.Min.X+x, r.Min.Y+y))
		}
	}
	return out
}

// notBlank: the region holds more than the tray host's plain background.
func notBlank(img *image.NRGBA) bool {
	bg := img.NRGBAAt(0, 0)
	odd := 0
	for i := 0; i < len(img.Pix); i += 4 {
		d := absInt(int(img.Pix[i])-int(bg.R)) + absInt(int(img.Pix[i+1])-int(bg.G)) + absInt(int(img.Pix[i+2])-int(bg.B))
		if d > 60 {
			odd++
		}
	}
	return odd > 30
}

func differing(a, b *image.NRGBA) int {
	n := 0
	for i := 0; i < len(a.Pix); i += 4 {
		d := absInt(int(a.Pix[i])-int(b.Pix[i])) + absInt(int(a.Pix[i+1])-int(b.Pix[i+1])) + absInt(int(a.Pix[i+2])-int(b.Pix[i+2]))
		if d > 60 {
			n++
		}
	}
	return n
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func xdotool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("xdotool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xdotool %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitWindow waits for a window titled name and gives it the focus.
func waitWindow(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := exec.Command("xdotool", "search", "--onlyvisible", "--name", name).Output()
		if ids := strings.Fields(string(out)); err == nil && len(ids) > 0 {
			_ = exec.Command("xdotool", "windowfocus", ids[len(ids)-1]).Run()
			time.Sleep(300 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no window %q", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openMenu clicks the tray icon: the rightmost non-background pixel column of the region.
func openMenu(t *testing.T, region image.Rectangle) {
	t.Helper()
	x := region.Max.X - region.Dy()/2
	y := region.Min.Y + region.Dy()/2
	xdotool(t, "mousemove", fmt.Sprint(x), fmt.Sprint(y))
	xdotool(t, "click", "1")
	time.Sleep(500 * time.Millisecond)
}

func closeMenu() {
	_ = exec.Command("xdotool", "key", "Escape").Run()
	time.Sleep(300 * time.Millisecond)
}
