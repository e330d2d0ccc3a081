//go:build windows

package trayproto

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/windows"
)

// AttachChannel makes childR and childW inheritable by cmd, the tray
// process the agent is about to start, and by it alone (Go lists them in
// the child's PROC_THREAD_ATTRIBUTE_HANDLE_LIST), and names them in its
// environment (EnvChannel), which cmd.Env must already hold.
func AttachChannel(cmd *exec.Cmd, childR, childW *os.File) error {
	hs := []syscall.Handle{syscall.Handle(childR.Fd()), syscall.Handle(childW.Fd())}
	for _, h := range hs {
		if err := syscall.SetHandleInformation(h, syscall.HANDLE_FLAG_INHERIT, syscall.HANDLE_FLAG_INHERIT); err != nil {
			return fmt.Errorf("making the tray channel inheritable: %w", err)
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.AdditionalInheritedHandles = append(cmd.SysProcAttr.AdditionalInheritedHandles, hs...)
	// The packaged cardagent-tray.exe is a GUI program, but a console build
	// (go build ./cmd/cardagent-tray) started by an agent that has no
	// console would open an empty console window without this.
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NO_WINDOW
	cmd.SysProcAttr.HideWindow = true
	cmd.Env = append(cmd.Env, EnvChannel+"="+strconv.FormatUint(uint64(hs[0]), 10)+","+strconv.FormatUint(uint64(hs[1]), 10))
	return nil
}

func noInherit(f *os.File) {
	_ = syscall.SetHandleInformation(syscall.Handle(f.Fd()), syscall.HANDLE_FLAG_INHERIT, 0)
}
