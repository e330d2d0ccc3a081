//go:build !windows

package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// checkTrusted refuses path when anyone but one of owners could change it:
// the file, and every directory from it up to the root (of the path as
// given and of its target when it goes through symbolic links), must be
// owned by one of owners and not writable by group or others. A directory
// writable by all but sticky and owned by root (/tmp) is accepted: there
// no one can rename or remove another user's entries.
func checkTrusted(what, path string, owners []uint32) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	paths := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for cur := p; ; cur = filepath.Dir(cur) {
			if err := checkOne(what, path, cur, owners); err != nil {
				return err
			}
			if filepath.Dir(cur) == cur {
				break
			}
		}
	}
	return nil
}

func checkOne(what, file, cur string, owners []uint32) error {
	fi, err := os.Lstat(cur)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, file, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if !slices.Contains(owners, st.Uid) {
		return &TrustError{What: what, File: file, Path: cur,
			Why: "is owned by uid " + strconv.FormatUint(uint64(st.Uid), 10) + ", who could change it",
			Fix: "give it to root: sudo chown root:root '" + cur + "'"}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil // a link's own mode means nothing; its target is checked
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 && st.Uid == 0 {
		return nil
	}
	return &TrustError{What: what, File: file, Path: cur,
		Why: fmt.Sprintf("is writable by other users (mode %04o)", perm),
		Fix: "remove their write access: sudo chmod go-w '" + cur + "'"}
}
