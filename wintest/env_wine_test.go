//go:build wine && linux

package wintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// markerVar is set in the environment of every process a run starts in the
// root (Wine passes it on to the programs those start), so the run can find
// its own processes, and a later run can end those of a run that was killed.
const markerVar = "CARDAGENT_WINTEST"

// templatePrefix is the pristine Wine prefix scripts/wine-env makes (a path in the root).
const templatePrefix = "/opt/cardagent-wine/prefix"

// wineEnv is one test run's share of the Wine root: its own directory in the
// root's /tmp, its own Wine prefix (so its own wineserver), its own pcscd.
type wineEnv struct {
	script string // scripts/wine-env
	module string // the module's root directory
	root   string // the root, on the host
	work   string // this run's directory, on the host
	workIn string // the same, as a path inside the root

	seq atomic.Int32
}

// unavailable skips the test, or fails it under CI=true (CI must run it).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("the Wine suite cannot run in CI: %s", msg)
	}
	t.Skipf("the Wine suite cannot run here: %s (run as root: go test -tags wine ./wintest/)", msg)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// newWineEnv prepares (or reuses) the root and makes this run's directory
// and Wine prefix. Everything is undone at the end of the test.
func newWineEnv(t *testing.T) *wineEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "it needs root (debootstrap, chroot, mount namespaces)")
	}
	for _, tool := range []string{"unshare", "chroot", "wixl", "msibuild", "msiinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "%s is not installed (scripts/setup)", tool)
		}
	}
	w := &wineEnv{module: moduleRoot(t)}
	w.script = filepath.Join(w.module, "scripts", "wine-env")
	start := time.Now()
	var stderr bytes.Buffer
	cmd := exec.Command(w.script, "prepare")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		unavailable(t, "scripts/wine-env prepare: %v\n%s", err, tail(stderr.String(), 2000))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	w.root = lines[len(lines)-1]
	t.Logf("scripts/wine-env prepare: %.1f s (root %s)", time.Since(start).Seconds(), w.root)

	w.cleanStale(t)
	work, err := os.MkdirTemp(filepath.Join(w.root, "tmp"), "cardagent-wintest-")
	if err != nil {
		t.Fatal(err)
	}
	w.work = work
	w.workIn = "/tmp/" + filepath.Base(work)
	if err := os.WriteFile(filepath.Join(work, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "msi", "logs", "pcscd", "out"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	if out, err := exec.Command("cp", "-a", filepath.Join(w.root, templatePrefix), w.host(w.prefixIn())).CombinedOutput(); err != nil {
		t.Fatalf("copying the Wine prefix: %v\n%s", err, out)
	}
	t.Logf("Wine prefix copied in %.1f s", time.Since(start).Seconds())
	t.Cleanup(func() { w.close(t) })
	return w
}

// Paths: "in" paths are inside the root, host paths outside, win paths as
// Windows programs see them (Z: is the root's /).
func (w *wineEnv) host(in string) string { return filepath.Join(w.root, in) }
func (w *wineEnv) in(name string) string { return w.workIn + "/" + name }
func (w *wineEnv) win(in string) string  { return "Z:" + strings.ReplaceAll(in, "/", `\`) }
func (w *wineEnv) prefixIn() string      { return w.in("prefix") }

// cdrive is the host path of a file on the prefix's C: drive ("Program Files/cardagent/cardagent.exe").
func (w *wineEnv) cdrive(p string) string {
	return filepath.Join(w.host(w.prefixIn()), "drive_c", filepath.FromSlash(p))
}

// command is args run inside the root for this run (scripts/wine-env run),
// with its output in files (Wine's daemons may inherit a pipe and hold it
// open: files never block Wait).
func (w *wineEnv) command(ctx context.Context, name string, env []string, args ...string) (cmd *exec.Cmd, stdout, stderr string) {
	n := w.seq.Add(1)
	base := filepath.Join(w.work, "out", fmt.Sprintf("%02d-%s", n, name))
	stdout, stderr = base+".out", base+".err"
	full := []string{"run", "-e", markerVar + "=" + w.workIn}
	for _, e := range env {
		full = append(full, "-e", e)
	}
	full = append(full, args...)
	cmd = exec.CommandContext(ctx, w.script, full...)
	cmd.Env = append(os.Environ(), "WINEPREFIX="+w.prefixIn(), "CARDAGENT_WINE_PCSCD_DIR="+w.in("pcscd"))
	if o, err := os.Create(stdout); err == nil {
		cmd.Stdout = o
	}
	if e, err := os.Create(stderr); err == nil {
		cmd.Stderr = e
	}
	// Kill only what this command started, never a whole group.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
	return cmd, stdout, stderr
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout, 3000), tail(r.stderr, 3000))
}

// run runs args inside the root and waits (at most 2 minutes).
func (w *wineEnv) run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, so, se := w.command(ctx, filepath.Base(args[len(args)-1]), env, args...)
	err := cmd.Run()
	closeFiles(cmd)
	r := result{stdout: readFile(so), stderr: readFile(se)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: timed out\n%s", strings.Join(args, " "), r)
	}
	return r
}

// wine runs a Windows program and fails the test unless it exits 0.
func (w *wineEnv) wine(t *testing.T, args ...string) result {
	t.Helper()
	r := w.run(t, nil, append([]string{"wine"}, args...)...)
	if r.code != 0 {
		t.Fatalf("wine %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// background is a long-running command started for the test.
type background struct {
	cmd            *exec.Cmd
	stdout, stderr string
	done           chan struct{}
	err            error
}

func (w *wineEnv) start(t *testing.T, name string, env []string, args ...string) *background {
	t.Helper()
	cmd, so, se := w.command(context.Background(), name, env, args...)
	b := &background{cmd: cmd, stdout: so, stderr: se, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		b.err = cmd.Wait()
		closeFiles(cmd)
		close(b.done)
	}()
	return b
}

func (b *background) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// stop kills the command (if it still runs) and waits for it.
func (b *background) stop() {
	if b.running() {
		b.cmd.Process.Kill()
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
	}
}

// firstLine waits for the first line of the command's output.
func (b *background) firstLine(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if out := readFile(b.stdout); strings.Contains(out, "\n") {
			return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		}
		if !b.running() || time.Now().After(deadline) {
			t.Fatalf("no output from %s (running %v): %s", b.cmd.Args, b.running(), readFile(b.stderr))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close ends every process of this run and removes its directory (kept
// when the test failed and CARDAGENT_WINTEST_KEEP=1).
func (w *wineEnv) close(t *testing.T) {
	w.run(t, nil, "wineserver", "-k")
	w.killMarked(w.workIn)
	if t.Failed() && os.Getenv("CARDAGENT_WINTEST_KEEP") == "1" {
		t.Logf("kept %s", w.work)
		return
	}
	w.remove(t, w.work)
}

// remove deletes a run directory, never across a mount.
func (w *wineEnv) remove(t *testing.T, dir string) {
	if mountedUnder(dir) {
		t.Errorf("%s has something mounted below it: not deleting it", dir)
		return
	}
	if out, err := exec.Command("rm", "-rf", "--one-file-system", dir).CombinedOutput(); err != nil {
		t.Errorf("removing %s: %v %s", dir, err, out)
	}
}

// cleanStale ends the processes of, and removes, the directories of earlier
// runs whose test process is gone (a run killed before its cleanup).
func (w *wineEnv) cleanStale(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(w.root, "tmp", "cardagent-wintest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err == nil {
			if pid, err := strconv.Atoi(string(b)); err == nil && syscall.Kill(pid, 0) == nil && isTest(pid) {
				continue // its test still runs
			}
		} else if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) < time.Minute {
			continue // being created
		}
		w.killMarked("/tmp/" + filepath.Base(d))
		t.Logf("removing the directory of an earlier run: %s", d)
		w.remove(t, d)
	}
}

func isTest(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasSuffix(exe, ".test")
}

// killMarked kills every process carrying this run's marker, by pid.
func (w *wineEnv) killMarked(workIn string) {
	for range 3 {
		pids := markedProcs(workIn)
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// proc is a process of a run.
type proc struct {
	pid  int
	args []string
}

// markedProcs lists the processes whose environment carries the marker for workIn.
func markedProcs(workIn string) []proc {
	want := []byte(markerVar + "=" + workIn + "\x00")
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, proc{pid: pid, args: strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")})
	}
	return out
}

// procs lists this run's processes whose command line matches.
func (w *wineEnv) procs(match func(args []string) bool) []proc {
	var out []proc
	for _, p := range markedProcs(w.workIn) {
		if match(p.args) {
			out = append(out, p)
		}
	}
	return out
}

// alive says whether a process runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// cpuTime is the user+system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

func mountedUnder(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			return true
		}
	}
	return false
}

// listening says whether a TCP socket listens on port (any address), from
// /proc/net/tcp and tcp6.
func listening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" { // 0A: LISTEN
				return true
			}
		}
	}
	return false
}

// freePortPair finds a port p with p and p+1 free on the loopback (vpcd's two slots).
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := freePort(t)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func closeFiles(cmd *exec.Cmd) {
	for _, f := range []any{cmd.Stdout, cmd.Stderr} {
		if c, ok := f.(*os.File); ok {
			c.Close()
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
