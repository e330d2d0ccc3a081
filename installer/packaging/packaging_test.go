package packaging_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/config/plist"
	"github.com/cardagent/cardagent/installer"
	"github.com/cardagent/cardagent/installer/packaging"
)

// need skips the test when a tool is missing, except under CI=true, where
// scripts/setup installs them all and a missing one is a failure.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (scripts/setup installs it)", tool)
			}
			t.Skipf("%s is not installed (scripts/setup installs it)", tool)
		}
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fakeBinary stands in for the program in tests that only look at the
// package's layout.
func fakeBinary(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho cardagent test stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const orgConfig = `{
  "environment": "live",
  "environments": {"live": {"origins": ["https://signin.example.org"], "renewal_url": "https://renew.example.org/"}},
  "allowed_origins": ["https://portal.example.org:8443"]
}`

func payloadPaths(t *testing.T, o packaging.Options) []string {
	t.Helper()
	payload, cleanup, err := packaging.LinuxPayload(o)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var paths []string
	for _, p := range payload {
		paths = append(paths, p.Path)
	}
	slices.Sort(paths)
	return paths
}

func TestDebAndRPMCarryTheSamePayload(t *testing.T) {
	need(t, "dpkg-deb", "rpm")
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(orgConfig), 0o644)
	o := packaging.Options{Version: "1.2.3", Binary: fakeBinary(t, "cardagent"), TrayBinary: fakeBinary(t, "cardagent-tray"), Config: cfg, OutDir: t.TempDir()}
	want := payloadPaths(t, o)
	for _, p := range []string{
		"/usr/bin/cardagent", "/usr/bin/cardagent-tray", "/usr/lib/systemd/user/cardagent.service", "/etc/systemd/user/default.target.wants/cardagent.service",
		"/etc/cardagent/config.json", "/etc/opt/chrome/policies/managed/cardagent.json", "/etc/chromium/policies/managed/cardagent.json",
		"/etc/opt/edge/policies/managed/cardagent.json", "/usr/share/cardagent/firefox-policies.json",
	} {
		if !slices.Contains(want, p) {
			t.Errorf("payload lacks %s", p)
		}
	}

	deb, err := packaging.Deb(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rpm, err := packaging.RPM(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}

	// deb: files (not directories) in the data archive; both programs executable.
	var debFiles []string
	for _, line := range strings.Split(sh(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		p := strings.TrimPrefix(f[5], ".")
		debFiles = append(debFiles, p)
		if strings.HasPrefix(p, "/usr/bin/") && f[0] != "-rwxr-xr-x" {
			t.Errorf("deb: %s has mode %s", p, f[0])
		}
	}
	slices.Sort(debFiles)
	if !slices.Equal(debFiles, want) {
		t.Errorf("deb files\n%v\nwant\n%v", debFiles, want)
	}
	rpmFiles := strings.Fields(sh(t, "rpm", "-qlp", rpm))
	slices.Sort(rpmFiles)
	if !slices.Equal(rpmFiles, want) {
		t.Errorf("rpm -qlp\n%v\nwant\n%v", rpmFiles, want)
	}

	// Dependencies and configuration files. Only the tray needs the
	// appindicator library (and GTK through it): recommended, not required.
	if got := strings.TrimSpace(sh(t, "dpkg-deb", "-f", deb, "Depends")); got != "pcscd" {
		t.Errorf("deb Depends %q", got)
	}
	if got := strings.TrimSpace(sh(t, "dpkg-deb", "-f", deb, "Recommends")); got != "libayatana-appindicator3-1" {
		t.Errorf("deb Recommends %q", got)
	}
	if got := sh(t, "rpm", "-qp", "--requires", rpm); !strings.Contains(got, "pcsc-lite") || strings.Contains(got, "appindicator") {
		t.Errorf("rpm requires %q", got)
	}
	if got := strings.TrimSpace(sh(t, "rpm", "-qp", "--recommends", rpm)); got != "libayatana-appindicator-gtk3" {
		t.Errorf("rpm recommends %q", got)
	}
	wantConf := []string{"/etc/cardagent/config.json", "/etc/chromium/policies/managed/cardagent.json",
		"/etc/opt/chrome/policies/managed/cardagent.json", "/etc/opt/edge/policies/managed/cardagent.json"}
	ctrl := t.TempDir()
	sh(t, "dpkg-deb", "-e", deb, ctrl)
	conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if got := strings.Fields(string(conffiles)); !slices.Equal(sortedCopy(got), wantConf) {
		t.Errorf("deb conffiles %v", got)
	}
	if got := strings.Fields(sh(t, "rpm", "-qcp", rpm)); !slices.Equal(sortedCopy(got), wantConf) {
		t.Errorf("rpm config files %v", got)
	}
	// Maintainer scripts are valid shell.
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		sh(t, "sh", "-n", filepath.Join(ctrl, s))
	}

	// The browser policies carry the configured origins.
	data := t.TempDir()
	sh(t, "dpkg-deb", "-x", deb, data)
	chrome, _ := os.ReadFile(filepath.Join(data, "etc/opt/chrome/policies/managed/cardagent.json"))
	for _, o := range []string{"https://signin.example.org", "https://portal.example.org:8443"} {
		if !strings.Contains(string(chrome), o) {
			t.Errorf("chrome policy lacks %s: %s", o, chrome)
		}
	}
	firefox, _ := os.ReadFile(filepath.Join(data, "usr/share/cardagent/firefox-policies.json"))
	if !strings.Contains(string(firefox), `"signin.example.org"`) {
		t.Errorf("firefox policy: %s", firefox)
	}
	if shipped, _ := os.ReadFile(filepath.Join(data, "etc/cardagent/config.json")); string(shipped) != orgConfig {
		t.Errorf("shipped config differs from --config")
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestBadOptions(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"allowed_origins": ["http://evil.example.org"]}`), 0o644)
	tests := []struct {
		name string
		o    packaging.Options
	}{
		{"no version", packaging.Options{Binary: fakeBinary(t, "x"), OutDir: t.TempDir()}},
		{"no binary", packaging.Options{Version: "1.0.0", TrayBinary: fakeBinary(t, "t"), OutDir: t.TempDir()}},
		{"no tray program", packaging.Options{Version: "1.0.0", Binary: fakeBinary(t, "x"), OutDir: t.TempDir()}},
		{"missing tray program", packaging.Options{Version: "1.0.0", Binary: fakeBinary(t, "x"), TrayBinary: filepath.Join(t.TempDir(), "nope"), OutDir: t.TempDir()}},
		{"invalid config", packaging.Options{Version: "1.0.0", Binary: fakeBinary(t, "x"), TrayBinary: fakeBinary(t, "t"), Config: bad, OutDir: t.TempDir()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := packaging.Deb(context.Background(), tt.o); err == nil {
				t.Error("built")
			}
		})
	}
	if _, err := packaging.MSI(context.Background(), packaging.Options{Version: "dev", Binary: "a", BinaryW: "b", TrayBinary: "c", OutDir: t.TempDir()}); err == nil {
		t.Error("MSI with a non-numeric version")
	}
	if _, err := packaging.MSI(context.Background(), packaging.Options{Version: "1.0.0", Binary: "a", BinaryW: "b", OutDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "cardagent-tray.exe") {
		t.Errorf("MSI without the tray program: %v", err)
	}
}

// msiTable returns an MSI table's rows (msiinfo export), without the three
// header lines, each split on tabs.
func msiTable(t *testing.T, msi, table string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(sh(t, "msiinfo", "export", msi, table), "\r\n"), "\n")
	var rows [][]string
	for _, l := range lines[min(3, len(lines)):] {
		rows = append(rows, strings.Split(strings.TrimRight(l, "\r"), "\t"))
	}
	return rows
}

func hasRow(rows [][]string, want ...string) bool {
	return slices.ContainsFunc(rows, func(r []string) bool {
		for i, w := range want {
			if w != "*" && (i >= len(r) || r[i] != w) {
				return false
			}
		}
		return true
	})
}

func TestMSITables(t *testing.T) {
	need(t, "wixl", "msibuild", "msiinfo")
	o := packaging.Options{Version: "1.2.3-rc1", Binary: fakeBinary(t, "cardagent.exe"), BinaryW: fakeBinary(t, "cardagentw.exe"),
		TrayBinary: fakeBinary(t, "cardagent-tray.exe"), OutDir: t.TempDir()}
	msi, err := packaging.MSI(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(msi) != "cardagent-1.2.3-x64.msi" {
		t.Errorf("name %s", msi)
	}
	checks := []struct {
		table string
		row   []string
	}{
		{"File", []string{"cardagent.exe", "Agent", "cardagent.exe"}},
		{"File", []string{"cardagentw.exe", "Agent", "cardagentw.exe"}},
		// The tray icon, next to the agent, which starts it from there.
		{"File", []string{"cardagent_tray.exe", "Agent", "cardagent-tray.exe"}},
		// Per-session autostart for every user: the HKLM (root 2) Run value.
		{"Registry", []string{"*", "2", installer.WindowsRunKey, "cardagent", `"[INSTALLDIR]cardagentw.exe" supervise`, "Agent"}},
		// IT policy from the msiexec command line, written only when given.
		{"Registry", []string{"*", "2", installer.WindowsPolicyKey, "AllowedOrigins", "[ALLOWEDORIGINS]", "PolicyAllowedOrigins"}},
		{"Registry", []string{"*", "2", installer.WindowsPolicyKey, "Environment", "[ENVIRONMENT]", "PolicyEnvironment"}},
		{"Component", []string{"PolicyAllowedOrigins", "*", "INSTALLDIR", "*", `ALLOWEDORIGINS OR REMOVE~="ALL"`}},
		{"Component", []string{"PolicyEnvironment", "*", "INSTALLDIR", "*", `ENVIRONMENT OR REMOVE~="ALL"`}},
		{"Component", []string{"Agent", "{5AA630B9-BF4C-4411-A098-3BE158AE3360}", "INSTALLDIR", "256"}}, // 64-bit component
		// Major upgrade: older versions are removed, newer ones block a downgrade.
		{"Upgrade", []string{installer.WindowsUpgradeCode, "", "1.2.3", "", "1", "", "WIX_UPGRADE_DETECTED"}},
		{"Upgrade", []string{installer.WindowsUpgradeCode, "1.2.3", "", "", "2", "", "WIX_DOWNGRADE_DETECTED"}},
		{"Property", []string{"UpgradeCode", installer.WindowsUpgradeCode}},
		{"Property", []string{"ProductVersion", "1.2.3"}},
		{"Property", []string{"ALLUSERS", "1"}},
		{"Property", []string{"SecureCustomProperties", "WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;ALLOWEDORIGINS;ENVIRONMENT;IGNORELEGACY"}},
		{"LaunchCondition", []string{"NOT WIX_DOWNGRADE_DETECTED"}},
		{"LaunchCondition", []string{"Installed OR IGNORELEGACY OR NOT (LEGACYIDENTITYAGENT OR LEGACYIDENTITYAGENT64 OR LEGACYCREDENTIALMANAGEMENT OR LEGACYCREDENTIALMANAGEMENT64)", packaging.LegacyMessage}},
		{"AppSearch", []string{"LEGACYIDENTITYAGENT", "LEGACYIDENTITYAGENTSearch"}},
		{"RegLocator", []string{"LEGACYIDENTITYAGENTSearch", "2", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Identity Agent`, "DisplayName", "2"}},
		{"RegLocator", []string{"LEGACYCREDENTIALMANAGEMENT64Search", "2", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Credential Management`, "DisplayName", "18"}},
		// Running agents are stopped before files are replaced or removed.
		{"CustomAction", []string{"StopAgents", "114", "TASKKILLEXE", "/F /T /IM cardagentw.exe"}},
		{"CustomAction", []string{"SetTaskkillPath", "51", "TASKKILLEXE", "[System64Folder]taskkill.exe"}},
		{"InstallExecuteSequence", []string{"StopAgents", "", "1399"}},
		{"InstallExecuteSequence", []string{"RemoveExistingProducts", "", "1401"}},
		{"Shortcut", []string{"StartMenuShortcut", "ProgramMenuFolder", "cardagent", "StartMenu", "[INSTALLDIR]cardagentw.exe", "supervise"}},
	}
	tables := map[string][][]string{}
	for _, c := range checks {
		if tables[c.table] == nil {
			tables[c.table] = msiTable(t, msi, c.table)
		}
		if !hasRow(tables[c.table], c.row...) {
			t.Errorf("%s has no row %q; rows:\n%q", c.table, c.row, tables[c.table])
		}
	}
	// Every registry value belongs to a component the package removes: a
	// per-machine install (ALLUSERS=1) with nothing outside its components.
	for _, r := range tables["Registry"] {
		if r[1] != "2" {
			t.Errorf("registry value outside HKLM: %q", r)
		}
	}
	// Each build is a new product (ProductCode "*"), the upgrade code stays.
	again, err := packaging.MSI(context.Background(), packaging.Options{Version: "1.2.4", Binary: o.Binary, BinaryW: o.BinaryW, TrayBinary: o.TrayBinary, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	code := func(m string) string {
		for _, r := range msiTable(t, m, "Property") {
			if r[0] == "ProductCode" {
				return r[1]
			}
		}
		return ""
	}
	if a, b := code(msi), code(again); a == "" || a == b {
		t.Errorf("product codes %q and %q", a, b)
	}
}

func TestMacOSTree(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(orgConfig), 0o644)
	dir, err := packaging.MacOSTree(packaging.Options{Version: "1.2.3", Config: cfg, Binary: fakeBinary(t, "cardagent"), TrayBinary: fakeBinary(t, "cardagent-tray"), OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		exec bool
	}{
		{"root/usr/local/bin/cardagent", true},
		{"root/usr/local/bin/cardagent-tray", true},
		{"root/Library/LaunchAgents/org.cardagent.agent.plist", false},
		{"root/Library/Application Support/cardagent/config.json.default", false},
		{"root/usr/local/share/cardagent/uninstall.sh", true},
		{"scripts/preinstall", true},
		{"scripts/postinstall", true},
		{"extras/cardagent.mobileconfig", false},
		{"build-pkg.sh", true},
		{"README.txt", false},
	} {
		fi, err := os.Stat(filepath.Join(dir, f.path))
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if exec := fi.Mode()&0o111 != 0; exec != f.exec {
			t.Errorf("%s: executable %v, want %v", f.path, exec, f.exec)
		}
		if f.exec && !strings.HasPrefix(f.path, "root/usr/local/bin/") {
			sh(t, "sh", "-n", filepath.Join(dir, f.path))
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "root/Library/LaunchAgents/org.cardagent.agent.plist"))
	v, err := plist.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := v.(map[string]any); d["Label"] != installer.Label || d["ProgramArguments"].([]any)[0] != installer.MacBinary {
		t.Errorf("LaunchAgent %v", d)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "extras/cardagent.mobileconfig"))
	if _, err := plist.Parse(b); err != nil || !strings.Contains(string(b), "https://portal.example.org:8443") {
		t.Errorf("mobileconfig: %v", err)
	}
	for _, f := range []string{"root/usr/local/share/cardagent/uninstall.sh", "build-pkg.sh", "README.txt"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); !strings.Contains(string(b), packaging.MacTrayBinary) {
			t.Errorf("%s does not name %s:\n%s", f, packaging.MacTrayBinary, b)
		}
	}
	b, _ = os.ReadFile(filepath.Join(dir, "scripts/postinstall"))
	if !strings.Contains(string(b), `launchctl bootstrap "gui/$uid" "$PLIST"`) || !strings.Contains(string(b), "/Library/LaunchAgents/org.cardagent.agent.plist") {
		t.Errorf("postinstall:\n%s", b)
	}
}
