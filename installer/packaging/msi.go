package packaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cardagent/cardagent/installer"
)

// Legacy is an older NHS smart-card client the MSI refuses to install
// beside (docs/deployment.md lists the keys and why they are assumptions).
type Legacy struct {
	// Property is the MSI property AppSearch sets when the client is found.
	Property string
	// Key is its uninstall key under HKLM; the search reads its DisplayName.
	Key string
	// Win64 searches the 64-bit registry view (else the 32-bit one,
	// Wow6432Node, where 32-bit installers register).
	Win64 bool
}

// LegacyClients are the clients the MSI looks for.
var LegacyClients = []Legacy{
	{"LEGACYIDENTITYAGENT", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Identity Agent`, false},
	{"LEGACYIDENTITYAGENT64", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Identity Agent`, true},
	{"LEGACYCREDENTIALMANAGEMENT", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Credential Management`, false},
	{"LEGACYCREDENTIALMANAGEMENT64", `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NHS Credential Management`, true},
}

// LegacyMessage is the LaunchCondition's message.
const LegacyMessage = "NHS Identity Agent or NHS Credential Management is installed on this computer. " +
	"Both it and cardagent would answer the sign-in page and ask for the smartcard PIN. " +
	"Remove it first (Settings, Apps), or install with IGNORELEGACY=1 to keep both."

// Fixed component GUIDs: a component's GUID must stay the same in every
// version so that upgrades and removal find it.
const (
	agentGUID       = "{5AA630B9-BF4C-4411-A098-3BE158AE3360}"
	originsGUID     = "{E99DCA40-3538-4715-82E8-D5C8D3E37606}"
	environmentGUID = "{9EBCB61E-0FD2-4B1F-9C7A-73733019B958}"
	startMenuGUID   = "{9F7512FE-13FC-481A-8258-FD68AD0FED33}"
)

// MSI builds the Windows installer with wixl and returns its path. It
// needs Options.Binary (cardagent.exe), Options.BinaryW (cardagentw.exe)
// and Options.TrayBinary (cardagent-tray.exe, a GUI-subsystem build).
func MSI(ctx context.Context, o Options) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	if o.Arch != "amd64" {
		return "", fmt.Errorf("packaging msi: architecture %s: only amd64 (x64) is built", o.Arch)
	}
	if o.Binary == "" || o.BinaryW == "" || o.TrayBinary == "" {
		return "", errors.New("packaging msi: need cardagent.exe (Binary), cardagentw.exe (BinaryW) and cardagent-tray.exe (TrayBinary)")
	}
	version, err := msiVersion(o.Version)
	if err != nil {
		return "", err
	}
	st, err := newStage()
	if err != nil {
		return "", err
	}
	defer st.close()
	// wixl resolves File sources relative to its working directory only.
	for name, src := range map[string]string{"cardagent.exe": o.Binary, "cardagentw.exe": o.BinaryW, WindowsTrayExe: o.TrayBinary} {
		abs, err := filepath.Abs(src)
		if err != nil {
			return "", fmt.Errorf("packaging msi: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("packaging msi: %w", err)
		}
		if err := os.Symlink(abs, filepath.Join(st.dir, name)); err != nil {
			return "", fmt.Errorf("packaging msi: %w", err)
		}
	}
	data := map[string]any{
		"Manufacturer":    Vendor,
		"Version":         version,
		"UpgradeCode":     installer.WindowsUpgradeCode,
		"Legacy":          LegacyClients,
		"LegacyMessage":   LegacyMessage,
		"AgentGUID":       agentGUID,
		"OriginsGUID":     originsGUID,
		"EnvironmentGUID": environmentGUID,
		"StartMenuGUID":   startMenuGUID,
		"Exe":             "cardagent.exe",
		"ExeW":            "cardagentw.exe",
		"ExeTray":         WindowsTrayExe,
		"RunKey":          installer.WindowsRunKey,
		"RunValue":        installer.WindowsRunValue,
		"PolicyKey":       installer.WindowsPolicyKey,
		"ProductKey":      installer.WindowsProductKey,
	}
	wxs, err := installer.Render("windows/cardagent.wxs", data)
	if err != nil {
		return "", err
	}
	wxsPath, err := st.put("cardagent.wxs", wxs, 0o644)
	if err != nil {
		return "", err
	}
	sql, err := installer.Render("windows/post-build.sql", data)
	if err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(o.OutDir, "cardagent-"+version+"-x64.msi"))
	if err != nil {
		return "", err
	}
	os.Remove(out)
	if err := run(ctx, st.dir, "wixl", "-a", "x64", "-o", out, wxsPath); err != nil {
		return "", fmt.Errorf("packaging msi: %w", err)
	}
	// wixl has no component conditions and no custom actions of these
	// types: msibuild adds them to the tables (windows/post-build.sql).
	for _, q := range strings.Split(string(sql), "\n") {
		if q = strings.TrimSpace(q); q == "" {
			continue
		}
		if err := run(ctx, "", "msibuild", out, "-q", q); err != nil {
			os.Remove(out)
			return "", fmt.Errorf("packaging msi: %w", err)
		}
	}
	return out, nil
}
