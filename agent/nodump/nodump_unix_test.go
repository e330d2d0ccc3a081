//go:build linux || darwin

package nodump

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestMain: as a child (CARDAGENT_TEST_CRASH set) the test binary allows
// core dumps as far as it may, calls Disable when asked, and crashes.
func TestMain(m *testing.M) {
	switch os.Getenv("CARDAGENT_TEST_CRASH") {
	case "":
		os.Exit(m.Run())
	case "disable":
		allowCores()
		if err := Disable(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
	default:
		allowCores()
	}
	panic("crash on purpose") // GOTRACEBACK=crash: the runtime aborts with SIGABRT
}

func allowCores() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &rl); err == nil {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &rl)
	}
}

// crash runs the child in its own directory and says whether the kernel
// wrote a core dump of it (the wait status, and any core file there).
func crash(t *testing.T, mode string) bool {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CARDAGENT_TEST_CRASH="+mode, "GOTRACEBACK=crash")
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("child: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Fatalf("child ended with %v, want SIGABRT", ws)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "core*"))
	return ws.CoreDump() || len(files) > 0
}

// TestDisable: a process that crashes after Disable leaves no core dump,
// where the same crash without it does (when the system writes dumps at
// all: the control run says).
func TestDisable(t *testing.T) {
	if !crash(t, "allow") {
		pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
		t.Skipf("this system writes no core dump even when allowed (%s, core_pattern %q): nothing to compare", runtime.GOOS, pattern)
	}
	if crash(t, "disable") {
		t.Fatal("a core dump was written after Disable")
	}
}
