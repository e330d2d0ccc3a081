//go:build linux

package packaging_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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
		t.Skip("the package install test needs root (mount and chroot for a throwaway copy of this machine)")
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

// The test binary re-runs TestDebInstallAndRemove as its own child, inside
// the throwaway root, when these are set: the directory for the root's
// layers, the deb to install and its payload's paths (colon-separated).
const (
	envThrowawayRoot    = "CARDAGENT_TEST_DEB_ROOT"
	envThrowawayDeb     = "CARDAGENT_TEST_DEB"
	envThrowawayPayload = "CARDAGENT_TEST_DEB_PAYLOAD"
)

// firefoxPolicy is where the package's postinst puts its Firefox policy when
// there is none.
const firefoxPolicy = "/etc/firefox/policies/policies.json"

// packageDirs are directories the package creates where they are missing,
// which purge must remove again.
var packageDirs = []string{"/etc/cardagent", "/etc/opt/chrome", "/etc/opt/edge", "/etc/chromium", "/usr/share/cardagent", "/etc/firefox", "/etc/systemd/user/default.target.wants"}

// TestDebInstallAndRemove builds the real programs and their deb, installs
// it with dpkg, checks the installed files, the user unit and its global
// enable link, the browser policies, that `cardagent doctor` and `cardagent
// config show` run, that cardagent-tray starts (and refuses to run without
// its agent) and that the agent does not need GTK; then removes and purges
// it and checks that nothing is left.
//
// All of that happens in a throwaway copy of this machine, never on the
// machine itself: a child process (this test binary again) in private mount
// and network namespaces mounts an overlay whose lower layer is / and whose
// upper layer is a tmpfs, and chroots into it. dpkg, its lock, its database
// and the maintainer scripts write only to the tmpfs, which vanishes with the
// child; the child's network has only its own loopback, so doctor's probes
// reach no port of this machine. Afterwards the test checks that this
// machine's package database and every path the package touches are as they
// were.
func TestDebInstallAndRemove(t *testing.T) {
	if root := os.Getenv(envThrowawayRoot); root != "" {
		enterThrowawayRoot(t, root, os.Getenv(envThrowawayDeb))
		installAndRemove(t, "/tmp/cardagent-test.deb", strings.Split(os.Getenv(envThrowawayPayload), ":"))
		return
	}
	if testing.Short() {
		t.Skip("builds the programs and their deb, and installs it in a throwaway root")
	}
	requireRoot(t)
	need(t, "dpkg", "dpkg-deb", "dpkg-query", "go", "ldd")
	if !haveOverlay() {
		if os.Getenv("CI") == "true" {
			t.Fatal("the kernel has no overlay file system (the package install test installs into an overlay)")
		}
		t.Skip("the kernel has no overlay file system (the package install test installs into an overlay)")
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

	// What the package would change on this machine, as it is now.
	payload := payloadPaths(t, o)
	watched := append(slices.Clone(payload), packageDirs...)
	watched = append(watched, firefoxPolicy, "/var/lib/dpkg/info/cardagent.list", "/var/lib/dpkg/info/cardagent.postinst", "/var/lib/dpkg/info/cardagent.conffiles")
	before := snapshot(t, watched)
	statusBefore, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDebInstallAndRemove$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), envThrowawayRoot+"="+root, envThrowawayDeb+"="+deb, envThrowawayPayload+"="+strings.Join(payload, ":"))
	child.SysProcAttr = &syscall.SysProcAttr{
		// Go makes the new mount namespace's mounts private before exec.
		Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		Pdeathsig:    syscall.SIGKILL,
	}
	out, err := child.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestDebInstallAndRemove")) {
		t.Fatalf("install and remove in a throwaway root: %v\n%s", err, out)
	}
	t.Logf("in the throwaway root:\n%s", out)

	// This machine is as it was: the package's paths, and the package
	// database's entry for cardagent (another package manager may have
	// changed other entries meanwhile).
	after := snapshot(t, watched)
	for _, p := range watched {
		if before[p] != after[p] {
			t.Errorf("the test changed %s on this machine: %s, was %s", p, after[p], before[p])
		}
	}
	statusAfter, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(statusBefore, statusAfter) {
		t.Logf("/var/lib/dpkg/status unchanged: sha256 %x", sha256.Sum256(statusAfter))
	} else if b, a := stanza(statusBefore, "cardagent"), stanza(statusAfter, "cardagent"); b != a {
		t.Errorf("the test changed this machine's package database: cardagent entry\n%s\nwas\n%s", a, b)
	} else {
		t.Logf("/var/lib/dpkg/status was changed meanwhile by another package manager; its cardagent entry is unchanged")
	}
}

// haveOverlay says whether the kernel has the overlay file system, or can
// load it when the test mounts one.
func haveOverlay() bool {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && bytes.Contains(b, []byte("\toverlay\n")) {
		return true
	}
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	release := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		release = append(release, byte(c))
	}
	modules, _ := filepath.Glob("/lib/modules/" + string(release) + "/kernel/fs/overlayfs/overlay.ko*")
	return len(modules) > 0
}

// snapshot describes each path: absent, a directory, a link's target or a
// file's SHA-256.
func snapshot(t *testing.T, paths []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(paths))
	for _, p := range paths {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			m[p] = "absent"
		case err != nil:
			t.Fatal(err)
		case fi.IsDir():
			m[p] = "directory"
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[p] = "link to " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m[p] = fmt.Sprintf("%v file, sha256 %x", fi.Mode(), sha256.Sum256(b))
		}
	}
	return m
}

// stanza is the package's entry in a dpkg status file, "" when it has none.
func stanza(status []byte, pkg string) string {
	for _, s := range strings.Split(string(status), "\n\n") {
		if strings.HasPrefix(strings.TrimLeft(s, "\n"), "Package: "+pkg+"\n") {
			return s
		}
	}
	return ""
}

// enterThrowawayRoot runs in the child, in its own mount namespace: it
// makes dir a tmpfs, mounts the overlay of / and that tmpfs, gives it its
// own /proc, this machine's /dev, an empty /run (no systemd or D-Bus of this
// machine to reach) and an empty /tmp holding the deb, and chroots into it.
func enterThrowawayRoot(t *testing.T, dir, debFile string) {
	t.Helper()
	deb, err := os.ReadFile(debFile)
	if err != nil {
		t.Fatal(err)
	}
	mount := func(source, target, fstype string, flags uintptr, data string) {
		t.Helper()
		if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
			t.Fatalf("mount %s on %s (%s): %v", source, target, fstype, err)
		}
	}
	mount("tmpfs", dir, "tmpfs", 0, "mode=0700")
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mount("overlay", merged, "overlay", 0, "lowerdir=/,upperdir="+upper+",workdir="+work)
	mount("proc", merged+"/proc", "proc", 0, "")
	mount("/dev", merged+"/dev", "", syscall.MS_BIND|syscall.MS_REC, "")
	for _, d := range []string{"/run", "/tmp"} {
		mount("tmpfs", merged+d, "tmpfs", 0, "mode=1777")
	}
	if err := os.WriteFile(merged+"/tmp/cardagent-test.deb", deb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chroot(merged); err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir("/"); err != nil {
		t.Fatal(err)
	}
}

// installAndRemove installs, checks, removes and purges the deb: in the
// throwaway root only.
func installAndRemove(t *testing.T, deb string, payload []string) {
	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
	}
	// A cardagent this machine has installed is purged in the copy, so the
	// test starts from a machine without it.
	if exec.Command("dpkg-query", "-W", "cardagent").Run() == nil {
		dpkg("--purge", "cardagent")
	}
	for _, p := range []string{installer.LinuxBinary, packaging.LinuxTrayBinary} {
		os.Remove(p)
	}
	firefoxBefore := exists(firefoxPolicy)
	var newDirs []string // directories the package creates, which purge must remove
	for _, d := range packageDirs {
		if !exists(d) {
			newDirs = append(newDirs, d)
		}
	}

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
		if b, err := os.ReadFile(firefoxPolicy); err != nil || !strings.Contains(string(b), "signin.example.org") {
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
	if !firefoxBefore && exists(firefoxPolicy) {
		t.Errorf("dpkg -r left %s", firefoxPolicy)
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
