package prompttest

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Desktop is a private X server (Xvfb) for tests of the real desktop
// dialog, driven with xdotool as a user would, and screenshotted with
// ImageMagick's import. scripts/setup installs all three and zenity.
type Desktop struct {
	// Display is the X display, e.g. ":201"; StartDesktop sets DISPLAY to it.
	Display string
}

// StartDesktop starts Xvfb on a free display, sets DISPLAY for the test
// (so a dialog program the code under test runs inherits it; the test must
// not be parallel) and stops the server when tb ends. It skips when Xvfb,
// xdotool, zenity or import is missing.
func StartDesktop(tb testing.TB) *Desktop {
	tb.Helper()
	for _, tool := range []string{"Xvfb", "xdotool", "zenity", "import"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("%s is not installed (scripts/setup installs it)", tool)
		}
	}
	disp := StartXvfb(tb, 200, 260, "1024x768x24")
	if t, ok := tb.(interface{ Setenv(k, v string) }); ok {
		t.Setenv("DISPLAY", disp)
		t.Setenv("WAYLAND_DISPLAY", "")
	} else {
		tb.Fatal("StartDesktop needs a *testing.T or *testing.B")
	}
	return &Desktop{Display: disp}
}

// StartXvfb starts Xvfb (screen WxHxDepth) on the first free display
// number in [first, last) and returns the display (":201"), once its socket
// is there; the server is stopped, and its socket and lock file removed,
// when tb ends. Callers in different packages use different ranges, as
// their test binaries run at once. It skips when Xvfb is missing or no
// number is free.
func StartXvfb(tb testing.TB, first, last int, screen string) string {
	tb.Helper()
	if _, err := exec.LookPath("Xvfb"); err != nil {
		tb.Skip("Xvfb is not installed (scripts/setup installs it)")
	}
	for n := first; n < last; n++ {
		sock, lock := fmt.Sprintf("/tmp/.X11-unix/X%d", n), fmt.Sprintf("/tmp/.X%d-lock", n)
		if _, err := os.Stat(sock); err == nil {
			continue
		}
		if _, err := os.Stat(lock); err == nil {
			continue
		}
		disp := fmt.Sprintf(":%d", n)
		cmd := exec.Command("Xvfb", disp, "-screen", "0", screen, "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		// Another test binary may have taken the number between the checks
		// above and the start: then this Xvfb exits, and the socket there is
		// the other's. The lock file names the server that holds the display.
		ours := func() bool {
			b, err := os.ReadFile(lock)
			if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
				return false
			}
			_, err = os.Stat(sock)
			return err == nil
		}
		deadline := time.After(10 * time.Second)
	wait:
		for !ours() {
			select {
			case <-exited:
				break wait
			case <-deadline:
				_ = cmd.Process.Kill()
				<-exited
				tb.Fatal("Xvfb did not start")
			case <-time.After(50 * time.Millisecond):
			}
		}
		select {
		case <-exited:
			continue // the number was taken: try the next
		default:
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM) // Xvfb removes its socket and lock file
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				_ = os.Remove(sock)
				_ = os.Remove(lock)
			}
		})
		return disp
	}
	tb.Skip("no free X display number")
	return ""
}

// XDoTool runs xdotool with args on the desktop and returns its output.
func (d *Desktop) XDoTool(tb testing.TB, args ...string) string {
	tb.Helper()
	cmd := exec.Command("xdotool", args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+d.Display)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("xdotool %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// WaitWindow waits (up to 30 s) for a visible window whose title contains
// name, and gives it the focus.
func (d *Desktop) WaitWindow(tb testing.TB, name string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", name)
		cmd.Env = append(os.Environ(), "DISPLAY="+d.Display)
		out, err := cmd.Output()
		if ids := strings.Fields(string(out)); err == nil && len(ids) > 0 {
			focus := exec.Command("xdotool", "windowfocus", "--sync", ids[len(ids)-1])
			focus.Env = cmd.Env
			_ = focus.Run()
			time.Sleep(500 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no window %q", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot saves the whole screen as a PNG at path and returns it. It
// fails the test when the picture is blank (fewer than 8 colours).
func (d *Desktop) Screenshot(tb testing.TB, path string) image.Image {
	tb.Helper()
	cmd := exec.Command("import", "-window", "root", path)
	cmd.Env = append(os.Environ(), "DISPLAY="+d.Display)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("import: %v %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		tb.Fatal(err)
	}
	if n := colours(img); n < 8 {
		tb.Errorf("screenshot %s looks blank (%d colours)", path, n)
	}
	return img
}

// colours counts the distinct colours of img (up to 64), sampling every third pixel.
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

// CopyScreenshots copies the named files from dir to the directory in the
// environment variable CARDAGENT_TEST_SCREENSHOTS, when it is set, for a
// person to look at.
func CopyScreenshots(tb testing.TB, dir string, names ...string) {
	tb.Helper()
	out := os.Getenv("CARDAGENT_TEST_SCREENSHOTS")
	if out == "" {
		return
	}
	for _, name := range names {
		b, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(out+"/"+name, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
