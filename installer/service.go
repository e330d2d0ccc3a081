package installer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

// Who installed the autostart; the marker goes into the unit or plist so
// that `cardagent service uninstall` never removes what a package owns.
const (
	ByPackage = "the cardagent package"
	ByCommand = "`cardagent service install`"
)

// File is one file to install.
type File struct {
	// Path is absolute on the target system, with '/' separators.
	Path string
	Mode fs.FileMode
	Data []byte
}

// Link is one symbolic link to install.
type Link struct {
	Path, Target string
}

// RegistryValue is one REG_SZ value under HKEY_LOCAL_MACHINE.
type RegistryValue struct {
	Key, Name, Value string
}

// Autostart is what makes the agent start in every user's session on one
// operating system.
type Autostart struct {
	GOOS     string
	Files    []File
	Links    []Link
	Registry []RegistryValue
}

// AutostartFor builds the autostart for goos, running the program at exe
// (its path on the target system). installedBy is ByPackage or ByCommand.
//
//   - linux: a systemd user unit in /usr/lib/systemd/user, enabled for every
//     user by a link in /etc/systemd/user/default.target.wants (what
//     `systemctl --global enable` does);
//   - darwin: a LaunchAgent in /Library/LaunchAgents, loaded into every
//     user's GUI (Aqua) session;
//   - windows: the HKLM Run value, which starts `<exe> supervise` in every
//     interactive session at sign-in; supervise restarts the agent if it
//     dies. exe should be cardagentw.exe (no console window).
func AutostartFor(goos, exe, installedBy string) (Autostart, error) {
	data := map[string]string{"Exec": exe, "InstalledBy": installedBy, "Label": Label}
	a := Autostart{GOOS: goos}
	switch goos {
	case "linux":
		if !path.IsAbs(exe) {
			return a, fmt.Errorf("autostart: %q is not an absolute path", exe)
		}
		unit, err := render("linux/cardagent.service", data)
		if err != nil {
			return a, err
		}
		p := LinuxUnitDir + "/" + LinuxUnit
		a.Files = []File{{Path: p, Mode: 0o644, Data: unit}}
		a.Links = []Link{{Path: LinuxWantsDir + "/" + LinuxUnit, Target: p}}
	case "darwin":
		if !path.IsAbs(exe) {
			return a, fmt.Errorf("autostart: %q is not an absolute path", exe)
		}
		plist, err := render("darwin/launchagent.plist", data)
		if err != nil {
			return a, err
		}
		a.Files = []File{{Path: MacLaunchAgent(), Mode: 0o644, Data: plist}}
	case "windows":
		if !isWindowsAbs(exe) {
			return a, fmt.Errorf("autostart: %q is not an absolute Windows path", exe)
		}
		a.Registry = []RegistryValue{{Key: WindowsRunKey, Name: WindowsRunValue, Value: `"` + exe + `" supervise`}}
	default:
		return a, fmt.Errorf("autostart: %s is not supported: start `cardagent run` from the desktop's autostart", goos)
	}
	return a, nil
}

func isWindowsAbs(p string) bool {
	return len(p) > 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') ||
		strings.HasPrefix(p, `\\`)
}

// under maps an absolute target path into root ("" is the running system).
func under(root, p string) string {
	if root == "" {
		return filepath.FromSlash(p)
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

// ErrOwnedByPackage means the autostart on this machine belongs to a
// package: the package manager, not `cardagent service`, must change it.
var ErrOwnedByPackage = errors.New("the autostart was installed by the cardagent package: use the package manager (apt remove cardagent, dnf remove cardagent) to change it")

// Registry writes HKLM values (Windows); tests use a map.
type Registry interface {
	SetString(key, name, value string) error
	GetString(key, name string) (value string, ok bool, err error)
	DeleteValue(key, name string) error
}

// Install writes the files, links and registry values under root ("" for
// the running system). It refuses to replace an autostart a package
// installed unless force is set. reg may be nil when a has no registry values.
func (a Autostart) Install(root string, reg Registry, force bool) error {
	if !force {
		if owner, err := a.owner(root); err != nil {
			return err
		} else if owner == ByPackage {
			return ErrOwnedByPackage
		}
	}
	for _, f := range a.Files {
		p := under(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("installing autostart: %w", err)
		}
		if err := writeFileAtomic(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("installing autostart: %w", err)
		}
	}
	for _, l := range a.Links {
		p := under(root, l.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("installing autostart: %w", err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("installing autostart: %w", err)
		}
		if err := os.Symlink(l.Target, p); err != nil {
			return fmt.Errorf("installing autostart: %w", err)
		}
	}
	if len(a.Registry) > 0 && reg == nil {
		return errors.New("installing autostart: the Windows registry is only available on Windows")
	}
	for _, v := range a.Registry {
		if err := reg.SetString(v.Key, v.Name, v.Value); err != nil {
			return fmt.Errorf("installing autostart: HKLM\\%s\\%s: %w", v.Key, v.Name, err)
		}
	}
	return nil
}

// Uninstall removes what Install wrote. Missing pieces are not an error;
// an autostart installed by a package is refused unless force is set.
func (a Autostart) Uninstall(root string, reg Registry, force bool) error {
	if !force {
		if owner, err := a.owner(root); err != nil {
			return err
		} else if owner == ByPackage {
			return ErrOwnedByPackage
		}
	}
	for _, l := range a.Links {
		if err := os.Remove(under(root, l.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing autostart: %w", err)
		}
		removeEmptyDir(under(root, path.Dir(l.Path)))
	}
	for _, f := range a.Files {
		if err := os.Remove(under(root, f.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing autostart: %w", err)
		}
	}
	if len(a.Registry) > 0 && reg == nil {
		return errors.New("removing autostart: the Windows registry is only available on Windows")
	}
	for _, v := range a.Registry {
		if err := reg.DeleteValue(v.Key, v.Name); err != nil {
			return fmt.Errorf("removing autostart: HKLM\\%s\\%s: %w", v.Key, v.Name, err)
		}
	}
	return nil
}

// Installed tells whether every piece of the autostart is in place.
func (a Autostart) Installed(root string, reg Registry) (bool, error) {
	for _, f := range a.Files {
		if _, err := os.Stat(under(root, f.Path)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, err
		}
	}
	for _, l := range a.Links {
		t, err := os.Readlink(under(root, l.Path))
		if err != nil || t != l.Target {
			return false, nil
		}
	}
	for _, v := range a.Registry {
		if reg == nil {
			return false, errors.New("the Windows registry is only available on Windows")
		}
		if _, ok, err := reg.GetString(v.Key, v.Name); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// owner reads who installed the autostart already in place ("" if none).
func (a Autostart) owner(root string) (string, error) {
	for _, f := range a.Files {
		b, err := os.ReadFile(under(root, f.Path))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading autostart: %w", err)
		}
		if bytes.Contains(b, []byte("Installed by "+ByPackage)) {
			return ByPackage, nil
		}
		return ByCommand, nil
	}
	return "", nil
}

func removeEmptyDir(dir string) {
	_ = os.Remove(dir) // fails, as wanted, when the directory is not empty
}

func writeFileAtomic(p string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Controller starts and stops the agent of the calling user's session.
// A kardianos/service user service (systemd --user) satisfies it.
type Controller interface {
	Start() error
	Stop() error
	Status() (service.Status, error)
}

// StatusWords says a service.Status in words.
func StatusWords(s service.Status) string {
	switch s {
	case service.StatusRunning:
		return "running"
	case service.StatusStopped:
		return "stopped"
	}
	return "unknown"
}

// NewController returns the Controller for the running system: systemd
// --user through kardianos/service on Linux, launchctl on macOS, the
// session's process list on Windows.
func NewController(exe string) (Controller, error) { return newController(exe) }

// userService is the kardianos/service configuration of the per-user agent.
func userService(name string) (service.Service, error) {
	return service.New(noProgram{}, &service.Config{
		Name:        name,
		DisplayName: "cardagent",
		Description: "cardagent smart-card sign-in agent",
		Option:      service.KeyValue{"UserService": true},
	})
}

// noProgram: the controller only starts and stops the service; the agent
// itself is `cardagent run`.
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }
