//go:build !unix

package prompt

import "os"

// processGone tells whether no process has this pid any more.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	p.Release()
	return false
}
