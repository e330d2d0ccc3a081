// Package installer puts cardagent on a machine.
//
// It installs the per-user autostart (a systemd user unit on Linux, a
// LaunchAgent on macOS, the HKLM Run key on Windows) and the browser
// policies that spare the sign-in page the Local Network Access prompt, and
// holds the templates the packages are built from (installer/packaging).
// Every file it writes comes from a template embedded from
// installer/templates.
//
// Why per user: the PIN dialog, the tray icon and, on terminal servers, the
// smart-card readers redirected into a session exist only in the user's
// session. A system service (Windows session 0, a systemd system unit, a
// LaunchDaemon) sees none of them, so cardagent runs one agent in each
// user's session, each on the first free port of the loopback range.
package installer

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

//go:embed templates
var templates embed.FS

// Names and places shared by the autostart, the packages and doctor.
const (
	// Name is the program's name, the Linux unit's stem and the Windows Run value.
	Name = "cardagent"
	// Label is the macOS LaunchAgent label and managed-preferences domain.
	Label = "org.cardagent.agent"

	// LinuxBinary is where the deb and rpm install the program.
	LinuxBinary = "/usr/bin/cardagent"
	// LinuxUnit is the systemd user unit's file name.
	LinuxUnit = "cardagent.service"
	// LinuxUnitDir holds packaged user units.
	LinuxUnitDir = "/usr/lib/systemd/user"
	// LinuxWantsDir is where `systemctl --global enable` links a unit
	// wanted by default.target: enabled for every user.
	LinuxWantsDir = "/etc/systemd/user/default.target.wants"
	// LinuxConfigDir is the system configuration directory.
	LinuxConfigDir = "/etc/cardagent"

	// MacBinary is where the macOS package installs the program.
	MacBinary = "/usr/local/bin/cardagent"
	// MacLaunchAgentsDir holds LaunchAgents loaded in every user's GUI session.
	MacLaunchAgentsDir = "/Library/LaunchAgents"
	// MacConfigDir is the system configuration directory.
	MacConfigDir = "/Library/Application Support/cardagent"
	// MacUninstallScript removes cardagent from a Mac.
	MacUninstallScript = "/usr/local/share/cardagent/uninstall.sh"

	// WindowsRunKey (under HKLM) starts a program in every user's
	// interactive session at sign-in.
	WindowsRunKey = `Software\Microsoft\Windows\CurrentVersion\Run`
	// WindowsRunValue is cardagent's value under WindowsRunKey.
	WindowsRunValue = "cardagent"
	// WindowsPolicyKey (under HKLM) holds IT policy (agent/config reads it).
	WindowsPolicyKey = `Software\Policies\cardagent`
	// WindowsProductKey (under HKLM) holds the installer's own values.
	WindowsProductKey = `Software\cardagent`
	// WindowsUpgradeCode identifies every version of the MSI, so that a
	// newer one replaces an older one. Never change it.
	WindowsUpgradeCode = "{D80CDD5B-3ABD-4DE8-863C-38100D5E5DB9}"
)

// MacLaunchAgent is the LaunchAgent's path.
func MacLaunchAgent() string { return MacLaunchAgentsDir + "/" + Label + ".plist" }

// render executes the embedded template name (a path under templates/).
// extra adds functions (such as uuid) for one template.
func render(name string, data any, extra ...template.FuncMap) ([]byte, error) {
	src, err := templates.ReadFile("templates/" + name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	t := template.New(name).Option("missingkey=error").Funcs(funcs)
	for _, f := range extra {
		t = t.Funcs(f)
	}
	t, err = t.Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Render executes the embedded template name (a path under
// installer/templates, such as "linux/postinstall.sh") with data.
func Render(name string, data any) ([]byte, error) { return render(name, data) }

// Template returns an embedded template's raw bytes (a file that needs no
// values, such as the default configuration).
func Template(name string) ([]byte, error) {
	b, err := templates.ReadFile("templates/" + name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b, nil
}

var funcs = template.FuncMap{
	// xml escapes text for an XML element or attribute.
	"xml": func(s string) (string, error) {
		var b strings.Builder
		if err := xml.EscapeText(&b, []byte(s)); err != nil {
			return "", err
		}
		return b.String(), nil
	},
	// comment makes s safe inside an XML comment (no "--", no markup).
	"comment": func(s string) string {
		s = strings.NewReplacer("<", "(", ">", ")", "&", "+").Replace(s)
		for strings.Contains(s, "--") {
			s = strings.ReplaceAll(s, "--", "-")
		}
		return strings.TrimSuffix(s, "-")
	},
	// json is v as compact JSON.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// reg quotes s as a .reg string value.
	"reg": func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	},
	// inc is i+1 (registry list entries are numbered from 1).
	"inc": func(i int) string { return strconv.Itoa(i + 1) },
}

// stableUUID derives a UUID (version 4 layout) from its inputs, so that
// generated files are reproducible and golden-testable.
func stableUUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}
