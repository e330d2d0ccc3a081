//go:build !windows

package trayproto

import (
	"os"
	"os/exec"
	"syscall"
)

// AttachChannel passes childR and childW to cmd, the tray process the
// agent is about to start, as descriptors 3 and 4, and names them in its
// environment (EnvChannel), which cmd.Env must already hold.
func AttachChannel(cmd *exec.Cmd, childR, childW *os.File) error {
	cmd.ExtraFiles = []*os.File{childR, childW}
	cmd.Env = append(cmd.Env, EnvChannel+"=3,4")
	return nil
}

func noInherit(f *os.File) { syscall.CloseOnExec(int(f.Fd())) }
