//go:build unix

package prompt

import (
	"errors"
	"syscall"
)

// processGone tells whether no process has this pid any more.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
