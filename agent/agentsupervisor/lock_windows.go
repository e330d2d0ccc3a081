package agentsupervisor

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
)

// ErrRunning means another supervisor already runs in this session.
var ErrRunning = errors.New("cardagent is already running in this session")

// SessionLock makes sure one supervisor runs per Windows session (the Run
// key and the Start menu shortcut may both start one): it holds a named
// mutex in the session's Local\ namespace until release is called.
func SessionLock() (release func(), err error) {
	name, err := windows.UTF16PtrFromString(`Local\cardagent-supervise`)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateMutex(nil, true, name)
	if errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		if h != 0 {
			windows.CloseHandle(h)
		}
		return nil, ErrRunning
	}
	if err != nil {
		return nil, fmt.Errorf("session lock: %w", err)
	}
	return func() {
		windows.ReleaseMutex(h)
		windows.CloseHandle(h)
	}, nil
}
