package installer_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/config/plist"
	"github.com/cardagent/cardagent/installer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var origins = []string{"https://signin.example.org", "https://portal.example.org:8443", "https://[2001:db8::1]"}

const source = `/etc/cardagent/config.json (environment "live")`

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./installer -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./installer -update, then review the diff)\ngot:\n%s", name, got)
	}
}

func TestBrowserPolicyGolden(t *testing.T) {
	for _, f := range installer.PolicyFormats {
		t.Run(f, func(t *testing.T) {
			b, err := installer.BrowserPolicy(f, origins, source)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "policy."+f, b)
		})
	}
}

func TestChromeAndFirefoxJSON(t *testing.T) {
	b, _ := installer.BrowserPolicy(installer.FormatChromeJSON, origins, source)
	var chrome map[string][]string
	if err := json.Unmarshal(b, &chrome); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{installer.PolicyLocalNetworkAccess, installer.PolicyLoopbackNetwork} {
		if !reflect.DeepEqual(chrome[name], origins) {
			t.Errorf("%s = %v", name, chrome[name])
		}
	}
	b, _ = installer.BrowserPolicy(installer.FormatFirefox, origins, source)
	var ff struct {
		Policies struct {
			LocalNetworkAccess struct{ SkipDomains []string }
		} `json:"policies"`
	}
	if err := json.Unmarshal(b, &ff); err != nil {
		t.Fatal(err)
	}
	if want := []string{"signin.example.org", "portal.example.org", "2001:db8::1"}; !reflect.DeepEqual(ff.Policies.LocalNetworkAccess.SkipDomains, want) {
		t.Errorf("SkipDomains %v, want %v", ff.Policies.LocalNetworkAccess.SkipDomains, want)
	}
	// No origins: valid, empty lists (not null).
	b, _ = installer.BrowserPolicy(installer.FormatChromeJSON, nil, source)
	if !bytes.Contains(b, []byte(`"LoopbackNetworkAllowedForUrls": []`)) {
		t.Errorf("empty policy: %s", b)
	}
}

func TestRegFile(t *testing.T) {
	b, _ := installer.BrowserPolicy(installer.FormatReg, origins, source)
	s, err := installer.DecodeUTF16LE(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "Windows Registry Editor Version 5.00\r\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Errorf("not a CRLF .reg file:\n%q", s[:80])
	}
	for _, want := range []string{
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome\LocalNetworkAccessAllowedForUrls]`,
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Edge\LoopbackNetworkAllowedForUrls]`,
		`[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Mozilla\Firefox\LocalNetworkAccess\SkipDomains]`,
		`"3"="https://[2001:db8::1]"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %s", want)
		}
	}
}

func TestMobileconfig(t *testing.T) {
	b, _ := installer.BrowserPolicy(installer.FormatMobileconfig, origins, "a -- b <c> & d")
	v, err := plist.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	profile := v.(map[string]any)
	if profile["PayloadType"] != "Configuration" || profile["PayloadScope"] != "System" {
		t.Errorf("profile: %v", profile)
	}
	types := map[string]map[string]any{}
	uuids := map[string]bool{profile["PayloadUUID"].(string): true}
	for _, p := range profile["PayloadContent"].([]any) {
		d := p.(map[string]any)
		types[d["PayloadType"].(string)] = d
		uuids[d["PayloadUUID"].(string)] = true
	}
	if len(uuids) != 5 {
		t.Errorf("payload UUIDs are not distinct: %v", uuids)
	}
	for _, dom := range []string{"com.google.Chrome", "com.microsoft.Edge"} {
		if got := types[dom][installer.PolicyLoopbackNetwork]; len(got.([]any)) != len(origins) {
			t.Errorf("%s: %v", dom, got)
		}
	}
	if lna := types["org.mozilla.firefox"]["LocalNetworkAccess"].(map[string]any); len(lna["SkipDomains"].([]any)) != 3 {
		t.Errorf("firefox: %v", lna)
	}
	if got := types[installer.Label]["AllowedOrigins"].([]any); got[0] != origins[0] {
		t.Errorf("cardagent payload: %v", got)
	}
	// Well-formed XML all through (the comment survives a hostile source).
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// Reproducible: the same origins give the same UUIDs.
	again, _ := installer.BrowserPolicy(installer.FormatMobileconfig, origins, "a -- b <c> & d")
	if !bytes.Equal(b, again) {
		t.Error("mobileconfig not reproducible")
	}
}

func TestBrowserPolicyErrors(t *testing.T) {
	if _, err := installer.BrowserPolicy("pdf", origins, source); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := installer.BrowserPolicy(installer.FormatChromeJSON, []string{"signin.example.org"}, source); err == nil {
		t.Error("non-origin accepted")
	}
}

func TestAutostartFor(t *testing.T) {
	linux, err := installer.AutostartFor("linux", "/usr/bin/cardagent", installer.ByPackage)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cardagent.service", linux.Files[0].Data)
	if len(linux.Links) != 1 || linux.Links[0].Path != "/etc/systemd/user/default.target.wants/cardagent.service" ||
		linux.Links[0].Target != "/usr/lib/systemd/user/cardagent.service" {
		t.Errorf("links %+v", linux.Links)
	}

	mac, err := installer.AutostartFor("darwin", "/usr/local/bin/cardagent", installer.ByPackage)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "org.cardagent.agent.plist", mac.Files[0].Data)
	v, err := plist.Parse(mac.Files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(map[string]any)
	if d["Label"] != installer.Label || !reflect.DeepEqual(d["ProgramArguments"], []any{"/usr/local/bin/cardagent", "run"}) ||
		d["RunAtLoad"] != true || d["LimitLoadToSessionType"] != "Aqua" || mac.Files[0].Path != "/Library/LaunchAgents/org.cardagent.agent.plist" {
		t.Errorf("plist %v at %s", d, mac.Files[0].Path)
	}

	win, err := installer.AutostartFor("windows", `C:\Program Files\cardagent\cardagentw.exe`, installer.ByCommand)
	if err != nil {
		t.Fatal(err)
	}
	want := []installer.RegistryValue{{Key: installer.WindowsRunKey, Name: "cardagent", Value: `"C:\Program Files\cardagent\cardagentw.exe" supervise`}}
	if !reflect.DeepEqual(win.Registry, want) || len(win.Files) != 0 {
		t.Errorf("windows %+v", win)
	}

	for _, bad := range []struct{ goos, exe string }{{"linux", "cardagent"}, {"darwin", "bin/cardagent"}, {"windows", "cardagentw.exe"}, {"plan9", "/bin/cardagent"}} {
		if _, err := installer.AutostartFor(bad.goos, bad.exe, installer.ByCommand); err == nil {
			t.Errorf("%s %s accepted", bad.goos, bad.exe)
		}
	}
}

// fakeRegistry is HKLM as a map.
type fakeRegistry map[string]string

func (f fakeRegistry) SetString(key, name, value string) error { f[key+`\`+name] = value; return nil }
func (f fakeRegistry) GetString(key, name string) (string, bool, error) {
	v, ok := f[key+`\`+name]
	return v, ok, nil
}
func (f fakeRegistry) DeleteValue(key, name string) error { delete(f, key+`\`+name); return nil }

func TestWindowsAutostartRegistry(t *testing.T) {
	a, _ := installer.AutostartFor("windows", `C:\Program Files\cardagent\cardagentw.exe`, installer.ByCommand)
	reg := fakeRegistry{}
	if err := a.Install("", nil, false); err == nil {
		t.Error("registry values installed without a registry")
	}
	if err := a.Install("", reg, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Installed("", reg); !ok || err != nil || reg[installer.WindowsRunKey+`\cardagent`] == "" {
		t.Fatalf("installed %v %v %v", ok, err, reg)
	}
	if err := a.Uninstall("", reg, false); err != nil || len(reg) != 0 {
		t.Fatalf("uninstall %v %v", err, reg)
	}
}

func TestAutostartOwnership(t *testing.T) {
	root := t.TempDir()
	pkg, _ := installer.AutostartFor("linux", "/usr/bin/cardagent", installer.ByPackage)
	cmd, _ := installer.AutostartFor("linux", "/usr/local/bin/cardagent", installer.ByCommand)
	if err := pkg.Install(root, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Install(root, nil, false); !errors.Is(err, installer.ErrOwnedByPackage) {
		t.Errorf("install over the package: %v", err)
	}
	if err := cmd.Uninstall(root, nil, false); !errors.Is(err, installer.ErrOwnedByPackage) {
		t.Errorf("uninstall of the package's unit: %v", err)
	}
	if err := cmd.Install(root, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Uninstall(root, nil, false); err != nil {
		t.Fatal(err)
	}
}

func TestWindowsAgentExe(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "cardagent.exe")
	if got := installer.WindowsAgentExe(exe); got != exe {
		t.Errorf("no windowless build: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "cardagentw.exe"), nil, 0o755)
	if got := installer.WindowsAgentExe(exe); got != filepath.Join(dir, "cardagentw.exe") {
		t.Errorf("with cardagentw.exe: %s", got)
	}
}

func TestTemplatesAreEmbedded(t *testing.T) {
	b, err := installer.Template("config/config.json")
	if err != nil || !json.Valid(b) {
		t.Fatalf("default config: %v", err)
	}
	if _, err := installer.Template("nope"); err == nil {
		t.Error("missing template found")
	}
}
