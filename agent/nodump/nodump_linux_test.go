package nodump

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDisableState: after Disable the process is not dumpable and its core
// limit is 0 (in a child, so that the test binary stays as it was).
func TestDisableState(t *testing.T) {
	if os.Getenv("CARDAGENT_TEST_STATE") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDisableState$")
		cmd.Env = append(os.Environ(), "CARDAGENT_TEST_STATE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	if err := Disable(); err != nil {
		t.Fatal(err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Fatalf("dumpable %d, %v", d, err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil || rl.Cur != 0 || rl.Max != 0 {
		t.Fatalf("RLIMIT_CORE %+v, %v", rl, err)
	}
}
