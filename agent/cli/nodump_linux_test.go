package cli_test

import (
	"testing"

	"golang.org/x/sys/unix"
)

// checkNoCoreDumps checks that the (in-process) agent disabled core dumps.
func checkNoCoreDumps(t *testing.T) {
	t.Helper()
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("the running agent is dumpable (%d, %v)", d, err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || rl.Cur != 0 {
		t.Errorf("the running agent's RLIMIT_CORE is %+v (%v)", rl, err)
	}
}
