package packaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/installer"
	"github.com/cardagent/cardagent/installer/packaging"
)

// requireRoot skips without root, except under CI=true (CI runs as root).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the package install test needs root, which CI has")
		}
		t.Skip("the package install test needs root (it installs the deb on this machine)")
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// moduleRoot is the repository's root (where go.mod is).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestDebInstallAndRemove builds the real programs and their deb, installs
// it on this machine with dpkg, checks the installed files, the user unit
// and its global enable link, the browser policies, that `cardagent
// doctor` and `cardagent config show` run, that cardagent-tray starts (and
// refuses to run without its agent) and that the agent does not need GTK;
// then removes and purges it and checks that nothing is left.
func TestDebInstallAndRemove(t *testing.T) {
	requireRoot(t)
	need(t, "dpkg", "dpkg-deb", "dpkg-query", "go", "ldd")
	if exec.Command("dpkg-query", "-W", "cardagent").Run() == nil {
		t.Skip("a cardagent package is already installed here: not touching it")
	}
	for _, p := range []string{installer.LinuxBinary, packaging.LinuxTrayBinary} {
		if exists(p) {
			t.Skipf("%s exists and belongs to no package: not touching it", p)
		}
	}
	firefox := "/etc/firefox/policies/policies.json"
	firefoxBefore := exists(firefox)
	var newDirs []string // directories the package creates, which purge must remove
	for _, d := range []string{"/etc/cardagent", "/etc/opt/chrome", "/etc/opt/edge", "/etc/chromium", "/usr/share/cardagent", "/etc/firefox", "/etc/systemd/user/default.target.wants"} {
		if !exists(d) {
			newDirs = append(newDirs, d)
		}
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "cardagent")
	trayBin := filepath.Join(dir, "cardagent-tray")
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/cardagent", "./cmd/cardagent-tray")
	build.Dir = moduleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(orgConfig), 0o644)
	o := packaging.Options{Version: "1.2.3", Binary: bin, TrayBinary: trayBin, Config: cfg, OutDir: dir}
	deb, err := packaging.Deb(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	payload := payloadPaths(t, o)

	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if exec.Command("dpkg-query", "-W", "cardagent").Run() == nil {
			exec.Command("dpkg", "--purge", "cardagent").Run()
		}
	})
	dpkg("-i", deb)

	// Installed: every file, the unit enabled for every user, the policies.
	for _, p := range payload {
		if !exists(p) {
			t.Errorf("%s not installed", p)
		}
	}
	if target, err := os.Readlink(installer.LinuxWantsDir + "/" + installer.LinuxUnit); err != nil || target != installer.LinuxUnitDir+"/"+installer.LinuxUnit {
		t.Errorf("global enable link: %q %v", target, err)
	}
	unit, _ := os.ReadFile(installer.LinuxUnitDir + "/" + installer.LinuxUnit)
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/cardagent run") {
		t.Errorf("unit:\n%s", unit)
	}
	if !firefoxBefore {
		if b, err := os.ReadFile(firefox); err != nil || !strings.Contains(string(b), "signin.example.org") {
			t.Errorf("Firefox policy not installed: %v", err)
		}
	}

	// The installed program runs: doctor reports (it may find problems on a
	// machine without a running pcscd; it must not crash), config show reads
	// the packaged configuration.
	out, err := exec.Command(installer.LinuxBinary, "doctor", "--json").Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cardagent doctor: %v", err)
	}
	var r doctor.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	for id, want := range map[string]doctor.Status{
		doctor.CheckConfig:        doctor.OK,
		doctor.CheckOrigins:       doctor.OK,
		doctor.CheckAutostart:     doctor.OK,
		doctor.CheckBrowserPolicy: doctor.OK,
	} {
		if got := r.Result(id); got.Status != want {
			t.Errorf("doctor %s: %s %s, want %s", id, got.Status, got.Message, want)
		}
	}
	if (err == nil) != r.OK {
		t.Errorf("doctor exit status %v but report OK=%v", err, r.OK)
	}
	show, err := exec.Command(installer.LinuxBinary, "config", "show").CombinedOutput()
	if err != nil || !strings.Contains(string(show), "https://signin.example.org") || !strings.Contains(string(show), "/etc/cardagent/config.json") {
		t.Errorf("config show: %v\n%s", err, show)
	}
	// The tray program loads (its libraries are here) and, started by hand
	// rather than by the agent, says so and exits 1.
	trayCmd := exec.Command(packaging.LinuxTrayBinary)
	trayCmd.Env = append(os.Environ(), "CARDAGENT_TRAY_CHANNEL=")
	trayOut, err := trayCmd.CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(trayOut), "no channel to the agent") {
		t.Errorf("cardagent-tray by hand: %v\n%s", err, trayOut)
	}
	// The agent links no GUI library: only the tray does.
	for prog, wantGTK := range map[string]bool{installer.LinuxBinary: false, packaging.LinuxTrayBinary: true} {
		libs := sh(t, "ldd", prog)
		if got := strings.Contains(libs, "libgtk-3") && strings.Contains(libs, "appindicator"); got != wantGTK {
			t.Errorf("%s links GTK and appindicator: %v, want %v\n%s", prog, got, wantGTK, libs)
		}
	}

	// Removed: everything but the configuration files.
	dpkg("-r", "cardagent")
	for _, p := range payload {
		isConf := strings.HasPrefix(p, "/etc/") && !strings.HasPrefix(p, "/etc/systemd/")
		if exists(p) != isConf {
			t.Errorf("after dpkg -r: %s exists=%v", p, exists(p))
		}
	}
	if !firefoxBefore && exists(firefox) {
		t.Errorf("dpkg -r left %s", firefox)
	}
	// Purged: nothing at all.
	dpkg("--purge", "cardagent")
	for _, p := range append(payload, newDirs...) {
		if exists(p) {
			t.Errorf("after dpkg --purge: %s is left", p)
		}
	}
	if exec.Command("dpkg-query", "-W", "cardagent").Run() == nil {
		t.Error("dpkg still lists cardagent")
	}
}
