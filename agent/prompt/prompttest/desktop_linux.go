package prompttest

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
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
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
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
				break
			}
			if time.Now().After(deadline) {
				tb.Fatal("Xvfb did not start")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if t, ok := tb.(interface{ Setenv(k, v string) }); ok {
			t.Setenv("DISPLAY", disp)
			t.Setenv("WAYLAND_DISPLAY", "")
		} else {
			tb.Fatal("StartDesktop needs a *testing.T or *testing.B")
		}
		return &Desktop{Display: disp}
	}
	tb.Skip("no free X display number")
	return nil
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
