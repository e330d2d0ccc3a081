package api

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// envScreenshots names a directory the dialog screenshots are also copied
// to, for a person to look at (they are always written to the test's
// temporary directory).
const envScreenshots = "CARDAGENT_TEST_SCREENSHOTS"

// TestEndToEndChoiceDialog: two cards of different holders in the two vpcd
// readers, the real desktop dialog (zenity) on a private Xvfb display,
// driven with xdotool as a user would. The choice dialog lists both
// holders (screenshot); choosing the second card and typing its PIN in the
// PIN dialog that follows signs in with the second card's key: the token's
// certificate is the second holder's, and the first card's PIN tries are
// untouched.
func TestEndToEndChoiceDialog(t *testing.T) {
	p := pcsctest.Require(t)
	for _, tool := range []string{"Xvfb", "xdotool", "zenity", "import"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/setup installs it)", tool)
		}
	}
	disp := startXvfb(t)
	t.Setenv("DISPLAY", disp) // zenity inherits it
	t.Setenv("WAYLAND_DISPLAY", "")
	dialog := &prompt.Dialog{Program: "zenity", Timeout: 60 * time.Second}
	a := startAgent(t, dialog, Options{})
	first, second, pki := insertTwoCards(t, p, a)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)
	shots := t.TempDir()

	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, map[string]any{"id": "d1", "type": "authenticate", "challenge": ch})

	waitWindow(t, "cardagent: choose a card")
	img := screenshot(t, filepath.Join(shots, "choice-dialog.png"))
	if colours(img) < 8 {
		t.Errorf("the choice dialog screenshot looks blank (%d colours)", colours(img))
	}
	xdotool(t, "key", "Down") // from the first row to the second
	time.Sleep(300 * time.Millisecond)
	screenshot(t, filepath.Join(shots, "choice-dialog-second.png"))
	xdotool(t, "key", "Return")

	waitWindow(t, "cardagent: PIN")
	screenshot(t, filepath.Join(shots, "pin-dialog-second-card.png"))
	xdotool(t, "type", "--delay", "30", markerPIN)
	xdotool(t, "key", "Return")

	m := c.reply(t, "d1")
	if errCode(m) != "" {
		t.Fatalf("reply %v", m)
	}
	if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if cn := tokenSubject(t, m); !strings.Contains(cn, secondHolder) {
		t.Errorf("token certificate %q, want the second holder's", cn)
	}
	if first.PINTries() != 3 || first.Signatures() != 0 || second.Signatures() != 1 {
		t.Errorf("first card tries %d signatures %d, second signatures %d", first.PINTries(), first.Signatures(), second.Signatures())
	}

	// Cancelling the choice is user_cancelled; no PIN dialog, no try spent.
	c.send(t, map[string]any{"id": "d2", "type": "authenticate", "challenge": testChallenge})
	waitWindow(t, "cardagent: choose a card")
	xdotool(t, "key", "Escape")
	if m := c.reply(t, "d2"); errCode(m) != "user_cancelled" {
		t.Errorf("cancelled choice: %v", m)
	}
	if first.PINTries() != 3 || second.PINTries() != 3 {
		t.Errorf("tries %d/%d after a cancelled choice", first.PINTries(), second.PINTries())
	}

	if dir := os.Getenv(envScreenshots); dir != "" {
		for _, name := range []string{"choice-dialog.png", "choice-dialog-second.png", "pin-dialog-second-card.png"} {
			b, err := os.ReadFile(filepath.Join(shots, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("screenshots in %s", shots)
}

// startXvfb starts a private X server and returns its display.
func startXvfb(t *testing.T) string {
	t.Helper()
	for n := 200; n < 260; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		disp := fmt.Sprintf(":%d", n)
		cmd := exec.Command("Xvfb", disp, "-screen", "0", "1024x768x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM) // Xvfb removes its socket and lock file
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return disp
			}
			if time.Now().After(deadline) {
				t.Fatal("Xvfb did not start")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Skip("no free X display number")
	return ""
}

func xdotool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("xdotool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xdotool %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitWindow waits for a visible window titled name and gives it the focus.
func waitWindow(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("xdotool", "search", "--onlyvisible", "--name", name).Output()
		if ids := strings.Fields(string(out)); err == nil && len(ids) > 0 {
			_ = exec.Command("xdotool", "windowfocus", "--sync", ids[len(ids)-1]).Run()
			time.Sleep(500 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no window %q", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the whole screen as a PNG at path and returns it.
func screenshot(t *testing.T, path string) image.Image {
	t.Helper()
	if out, err := exec.Command("import", "-window", "root", path).CombinedOutput(); err != nil {
		t.Fatalf("import: %v %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// colours counts the distinct colours of img (up to 64).
func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r, g, bl}] = true
			if len(seen) >= 64 {
				return len(seen)
			}
		}
	}
	return len(seen)
}
