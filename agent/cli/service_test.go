package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/installer"
)

func cliRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = cli.Main(context.Background(), args, &cli.Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestServiceInstallUninstallInRoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd user unit")
	}
	root := t.TempDir()
	unit := filepath.Join(root, installer.LinuxUnitDir, installer.LinuxUnit)
	link := filepath.Join(root, installer.LinuxWantsDir, installer.LinuxUnit)

	code, out, errs := cliRun(t, "service", "install", "--root", root)
	if code != cli.ExitOK {
		t.Fatalf("install: %d %s %s", code, out, errs)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=" + installer.LinuxBinary + " run", "WantedBy=default.target", "Restart=on-failure", "Installed by " + installer.ByCommand} {
		if !strings.Contains(string(b), want) {
			t.Errorf("unit lacks %q:\n%s", want, b)
		}
	}
	if target, err := os.Readlink(link); err != nil || target != installer.LinuxUnitDir+"/"+installer.LinuxUnit {
		t.Errorf("enable link: %q %v", target, err)
	}
	if code, out, _ := cliRun(t, "service", "status", "--root", root); code != 0 || !strings.Contains(out, "autostart: installed") {
		t.Errorf("status: %d %s", code, out)
	}
	// Installing again is fine (it replaces its own files).
	if code, _, errs := cliRun(t, "service", "install", "--root", root, "--exe", "/opt/cardagent/bin/cardagent"); code != 0 {
		t.Fatalf("reinstall: %s", errs)
	}
	if b, _ := os.ReadFile(unit); !strings.Contains(string(b), "ExecStart=/opt/cardagent/bin/cardagent run") {
		t.Errorf("--exe ignored:\n%s", b)
	}

	if code, _, errs := cliRun(t, "service", "uninstall", "--root", root); code != 0 {
		t.Fatalf("uninstall: %s", errs)
	}
	for _, p := range []string{unit, link, filepath.Dir(link)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if code, out, _ := cliRun(t, "service", "status", "--root", root); code != 0 || !strings.Contains(out, "not installed") {
		t.Errorf("status after uninstall: %s", out)
	}
	// Uninstalling what is not there is not an error.
	if code, _, errs := cliRun(t, "service", "uninstall", "--root", root); code != 0 {
		t.Errorf("second uninstall: %s", errs)
	}
}

func TestServiceLeavesPackageFilesAlone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd user unit")
	}
	root := t.TempDir()
	a, err := installer.AutostartFor("linux", installer.LinuxBinary, installer.ByPackage)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Install(root, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"install", "uninstall"} {
		code, _, errs := cliRun(t, "service", action, "--root", root)
		if code != cli.ExitFailure || !strings.Contains(errs, "package manager") {
			t.Errorf("%s over a packaged unit: %d %s", action, code, errs)
		}
	}
	if code, _, errs := cliRun(t, "service", "uninstall", "--root", root, "--force"); code != 0 {
		t.Fatalf("--force: %s", errs)
	}
	if ok, _ := a.Installed(root, nil); ok {
		t.Error("--force left the unit")
	}
}

func TestServiceUsage(t *testing.T) {
	for _, args := range [][]string{{"service"}, {"service", "restart"}, {"service", "--root", "x"}, {"service", "start", "--root", "x"}} {
		if code, _, errs := cliRun(t, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
}
