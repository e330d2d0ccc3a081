package installer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kardianos/service"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// sessionAgent starts and stops the supervised agent in the caller's
// Windows session (the Run key starts it at every sign-in).
type sessionAgent struct {
	exe     string // cardagentw.exe, or cardagent.exe when there is no windowless build
	session uint32
}

func newController(exe string) (Controller, error) {
	var sid uint32
	if err := windows.ProcessIdToSessionId(windows.GetCurrentProcessId(), &sid); err != nil {
		return nil, fmt.Errorf("finding this session: %w", err)
	}
	if sid == 0 {
		return nil, errors.New("session 0 has no desktop: run `cardagent service start` in the user's session")
	}
	return sessionAgent{exe: WindowsAgentExe(exe), session: sid}, nil
}

func (s sessionAgent) image() string { return filepath.Base(s.exe) }

func (s sessionAgent) Start() error {
	if st, _ := s.Status(); st == service.StatusRunning {
		return nil
	}
	cmd := exec.Command(s.exe, "supervise")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP,
		HideWindow:    true,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.exe, err)
	}
	return cmd.Process.Release()
}

func (s sessionAgent) Stop() error {
	out, err := exec.Command("taskkill.exe", "/F", "/IM", s.image(),
		"/FI", "SESSION eq "+strconv.FormatUint(uint64(s.session), 10),
		"/FI", "PID ne "+strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskkill: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s sessionAgent) Status() (service.Status, error) {
	out, err := exec.Command("tasklist.exe", "/NH", "/FO", "CSV",
		"/FI", "IMAGENAME eq "+s.image(),
		"/FI", "SESSION eq "+strconv.FormatUint(uint64(s.session), 10)).Output()
	if err != nil {
		return service.StatusUnknown, fmt.Errorf("tasklist: %w", err)
	}
	if strings.Contains(strings.ToLower(string(out)), strings.ToLower(`"`+s.image()+`"`)) {
		return service.StatusRunning, nil
	}
	return service.StatusStopped, nil
}

// hklm is the Registry on HKEY_LOCAL_MACHINE's 64-bit view.
type hklm struct{}

// NewRegistry returns the HKLM registry.
func NewRegistry() Registry { return hklm{} }

func (hklm) SetString(key, name, value string) error {
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, key, registry.SET_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return err
	}
	defer k.Close()
	return k.SetStringValue(name, value)
}

func (hklm) GetString(key, name string) (string, bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if errors.Is(err, registry.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer k.Close()
	v, _, err := k.GetStringValue(name)
	if errors.Is(err, registry.ErrNotExist) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (hklm) DeleteValue(key, name string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.SET_VALUE|registry.WOW64_64KEY)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer k.Close()
	if err := k.DeleteValue(name); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return err
	}
	return nil
}
