package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// One headless Chromium serves every test of the binary; each sign-in gets
// its own tab.
var (
	browserOnce    sync.Once
	browserCtx     context.Context
	browserErr     error
	browserCancels []context.CancelFunc
	browserDir     string
)

// chromiumPath finds the browser: $CARDAGENT_CHROMIUM, else Debian's chromium.
func chromiumPath() string {
	if p := os.Getenv("CARDAGENT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireBrowser returns the shared browser's context, starting it on first
// use. Without a browser it skips the test, and fails it under CI=true.
func requireBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("browser test cannot run in CI: chromium is not installed (run scripts/setup)")
		}
		t.Skip("skipping browser test: chromium is not installed (run scripts/setup)")
	}
	browserOnce.Do(func() { browserCtx, browserErr = startBrowser(path) })
	if browserErr != nil {
		t.Fatalf("starting %s: %v", path, browserErr)
	}
	return browserCtx
}

func startBrowser(path string) (context.Context, error) {
	dir, err := os.MkdirTemp("", "cardagent-e2e-chromium-")
	if err != nil {
		return nil, err
	}
	browserDir = dir
	// Headless as root, nothing that phones home (this machine's network is
	// closed: background requests fail by the dozen), a fresh profile.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.WindowSize(1024, 768),
		// Debian's chromium starts crashpad anyway: keep its database (and
		// any other per-user state) in the temporary directory, not in $HOME.
		chromedp.Env("XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	browserCancels = []context.CancelFunc{cancelBrowser, cancelAlloc}
	// The first Run starts the browser; it must get the browser's own
	// context (a derived one with a timeout would stop the browser when it ends).
	watchdog := time.AfterFunc(time.Minute, cancelBrowser)
	defer watchdog.Stop()
	if err := chromedp.Run(ctx); err != nil {
		closeBrowser()
		return nil, fmt.Errorf("launching the browser: %w", err)
	}
	return ctx, nil
}

// closeBrowser stops the shared browser (TestMain calls it after the tests).
func closeBrowser() {
	for _, c := range browserCancels {
		c()
	}
	browserCancels = nil
	if browserDir != "" {
		// Chromium's helpers (crashpad) may still write to the profile for
		// a moment after the browser has exited.
		for i := 0; i < 20; i++ {
			os.RemoveAll(browserDir)
			time.Sleep(100 * time.Millisecond)
			if _, err := os.Stat(browserDir); os.IsNotExist(err) {
				break
			}
		}
		browserDir = ""
	}
}
