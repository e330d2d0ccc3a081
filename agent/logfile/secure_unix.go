//go:build !windows

package logfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// noFollow makes opening the log fail on a symbolic link: whoever could
// put one there would have the agent append to, or truncate, another file.
const noFollow = syscall.O_NOFOLLOW

// checkDir checks the log directory: a real directory (not a link), owned
// by the user running the agent. A mode that lets others in is tightened to
// 0700 (the directory is ours): logs name the user's cards and the sites
// they sign in to.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
		return fmt.Errorf("log directory %s is not a directory (a link or a file): remove it, the agent makes its own", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("log directory %s belongs to uid %d, not to the user running the agent (uid %d): remove it, the agent makes its own", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("log directory %s: %w", dir, err)
		}
	}
	return nil
}
