package desktoplock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const systemMethod = "loginctl lock-session, else xdg-screensaver lock"

// lockSystem asks logind to lock the user's session: the one in
// $XDG_SESSION_ID, else the user's display session (a systemd user service
// is in no session of its own). Desktops without a logind-aware screen
// locker are tried through xdg-screensaver.
func lockSystem(ctx context.Context) error {
	var errs []error
	if loginctl, err := systemProgram("loginctl"); err == nil {
		id := os.Getenv("XDG_SESSION_ID")
		if id == "" {
			out, err := output(ctx, []string{loginctl, "show-user", strconv.Itoa(os.Getuid()), "--property=Display", "--value"})
			if err == nil {
				id = strings.TrimSpace(out)
			}
		}
		argv := []string{loginctl, "lock-session"}
		if validSessionID(id) {
			argv = append(argv, id)
		}
		err := run(ctx, argv)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	} else {
		errs = append(errs, err)
	}
	if xs, err := systemProgram("xdg-screensaver"); err == nil {
		err := run(ctx, []string{xs, "lock"})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	} else {
		errs = append(errs, err)
	}
	return fmt.Errorf("desktoplock: %w", errors.Join(errs...))
}

// systemDirs are where the system's lock programs are looked for: never
// the agent's PATH, which the user's environment sets, so the lock IT
// chose runs the system's program.
var systemDirs = []string{"/usr/bin", "/bin"}

// systemProgram finds name in systemDirs.
func systemProgram(name string) (string, error) {
	for _, dir := range systemDirs {
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, strings.Join(systemDirs, ", "))
}

// systemAvailable needs loginctl or xdg-screensaver in systemDirs.
func systemAvailable() error {
	_, lerr := systemProgram("loginctl")
	_, xerr := systemProgram("xdg-screensaver")
	if lerr != nil && xerr != nil {
		return errors.New("desktoplock: neither loginctl nor xdg-screensaver is installed")
	}
	return nil
}

// validSessionID accepts logind session ids ("2", "c1"): letters and digits.
func validSessionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
