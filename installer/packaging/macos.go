package packaging

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cardagent/cardagent/installer"
)

// MacOSTree lays out the macOS package in OutDir/cardagent-VERSION-macos:
// root/ (the payload), scripts/ (preinstall, postinstall), extras/ (a
// configuration profile) and build-pkg.sh, which runs pkgbuild and
// productbuild on a Mac. Options.Binary (the agent: cardagent-package
// builds it here without cgo, universal arm64+amd64) and Options.TrayBinary
// (the menu-bar icon: cgo and the macOS SDK, so built on a Mac) are optional:
// README.txt says how to add what is missing.
func MacOSTree(o Options) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	dir := filepath.Join(o.OutDir, "cardagent-"+o.Version+"-macos")
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("packaging macos: %w", err)
	}
	st := &stage{dir: dir}
	root := func(p string) string { return "root" + p }

	auto, err := installer.AutostartFor("darwin", installer.MacBinary, installer.ByPackage)
	if err != nil {
		return "", err
	}
	for _, f := range auto.Files {
		if _, err := st.put(root(f.Path), f.Data, f.Mode); err != nil {
			return "", err
		}
	}
	cfg, origins, source, err := o.defaultConfig()
	if err != nil {
		return "", err
	}
	if _, err := st.put(root(installer.MacConfigDir+"/config.json.default"), cfg, 0o644); err != nil {
		return "", err
	}
	for _, bin := range []struct{ src, dst string }{{o.Binary, installer.MacBinary}, {o.TrayBinary, MacTrayBinary}} {
		if bin.src == "" {
			continue
		}
		b, err := os.ReadFile(bin.src)
		if err != nil {
			return "", fmt.Errorf("packaging macos: %w", err)
		}
		if _, err := st.put(root(bin.dst), b, 0o755); err != nil {
			return "", err
		}
	}
	profile, err := installer.BrowserPolicy(installer.FormatMobileconfig, origins, source)
	if err != nil {
		return "", err
	}
	if _, err := st.put("extras/cardagent.mobileconfig", profile, 0o644); err != nil {
		return "", err
	}

	data := map[string]string{
		"Label":           installer.Label,
		"Plist":           installer.MacLaunchAgent(),
		"ConfigDir":       installer.MacConfigDir,
		"Exec":            installer.MacBinary,
		"TrayExec":        MacTrayBinary,
		"UninstallScript": installer.MacUninstallScript,
		"Version":         o.Version,
	}
	for _, t := range []struct {
		tmpl, dst string
		mode      os.FileMode
	}{
		{"darwin/preinstall", "scripts/preinstall", 0o755},
		{"darwin/postinstall", "scripts/postinstall", 0o755},
		{"darwin/uninstall.sh", root(installer.MacUninstallScript), 0o755},
		{"darwin/build-pkg.sh", "build-pkg.sh", 0o755},
		{"darwin/README.txt", "README.txt", 0o644},
	} {
		b, err := installer.Render(t.tmpl, data)
		if err != nil {
			return "", err
		}
		if _, err := st.put(t.dst, b, t.mode); err != nil {
			return "", err
		}
	}
	return dir, nil
}
