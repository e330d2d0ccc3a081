package trayproto

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Program names. The tray and the agent are separate programs installed
// side by side (/usr/bin, C:\Program Files\cardagent, /usr/local/bin), so
// that the agent never links the tray's GUI library (tray/trayui).
const (
	// TrayProgram is the tray icon, cmd/cardagent-tray.
	TrayProgram = "cardagent-tray"
	// AgentProgram is the agent, cmd/cardagent.
	AgentProgram = "cardagent"
)

// ExitNoTray is the exit status of a cardagent-tray built without the icon
// (tray.ErrNoTray). The agent's trayhost.TraySupervisor does not restart
// such a tray.
const ExitNoTray = 5

// FindProgram finds one of cardagent's programs (TrayProgram,
// AgentProgram; ".exe" is added on Windows): in the directory of the
// running executable, else on PATH.
func FindProgram(name string) (string, error) {
	return findProgram(name, runtime.GOOS, os.Executable, exec.LookPath)
}

func findProgram(name, goos string, self func() (string, error), lookPath func(string) (string, error)) (string, error) {
	file := name
	if goos == "windows" && !strings.HasSuffix(strings.ToLower(file), ".exe") {
		file += ".exe"
	}
	var dirs []string
	if exe, err := self(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
		// A symbolic link to the program (Homebrew, /usr/local/bin): also
		// look next to the real file.
		if real, err := filepath.EvalSymlinks(exe); err == nil && filepath.Dir(real) != dirs[0] {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, d := range dirs {
		// LookPath on a path checks that it is an executable file.
		if p, err := lookPath(filepath.Join(d, file)); err == nil {
			return p, nil
		}
	}
	if p, err := lookPath(file); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p, nil
	}
	where := "on PATH"
	if len(dirs) > 0 {
		where = "in " + strings.Join(dirs, " or ") + " or on PATH"
	}
	return "", fmt.Errorf("%s is not installed (not %s)", file, where)
}
