//go:build !windows

package tray

import (
	"os"
	"os/exec"
	"syscall"
)

// attachChannel passes childR and childW to cmd as descriptors 3 and 4.
func attachChannel(cmd *exec.Cmd, childR, childW *os.File) error {
	cmd.ExtraFiles = []*os.File{childR, childW}
	cmd.Env = append(cmd.Env, EnvChannel+"=3,4")
	return nil
}

func noInherit(f *os.File) { syscall.CloseOnExec(int(f.Fd())) }
