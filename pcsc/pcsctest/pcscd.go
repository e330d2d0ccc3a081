//go:build linux

// Package pcsctest runs a private pcscd for end-to-end tests.
//
// The pcscd runs with vsmartcard's vpcd reader driver: the code under test
// talks to a real pcscd through libpcsclite exactly as on a user's machine,
// and virtual cards (package vcard) are inserted into the vpcd slots.
//
// Each test binary gets its own pcscd in its own mount namespace (pcscd
// 1.9.9 always serves /run/pcscd/pcscd.comm, so a private directory is
// bind-mounted there) and its own vpcd port pair, so packages tested in
// parallel never share a reader. Clients in this process find it through
// PCSCLITE_CSOCK_NAME, which Start sets; libpcsclite reads it once, so one
// pcscd serves the whole test binary (restarts keep the same socket path).
//
// Starting needs root (for unshare and mount), pcscd and vpcd. Without them
// Require skips, except under CI=true, where it fails loudly.
package pcsctest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
)

// VPCDDriver is where Debian's vsmartcard-vpcd installs its reader driver.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// Reader names vpcd's two slots get in pcscd.
var ReaderNames = [2]string{"Virtual PCD 00 00", "Virtual PCD 00 01"}

// PCSCD is a private pcscd with one vpcd reader pair.
type PCSCD struct {
	Dir  string // holds the socket directory and reader config
	Port int    // vpcd slot 0 listens on Port, slot 1 on Port+1

	mu  sync.Mutex
	cmd *exec.Cmd
	out *Buffer
}

// Addr is the vpcd address a virtual card connects to for slot 0 or 1.
func (p *PCSCD) Addr(slot int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port+slot))
}

// Socket is the pcscd socket clients use (PCSCLITE_CSOCK_NAME).
func (p *PCSCD) Socket() string { return filepath.Join(p.Dir, "run", "pcscd.comm") }

// Reason says why a private pcscd cannot run here, or "" when it can.
func Reason() string {
	if os.Geteuid() != 0 {
		return "needs root (unshare and mount for a private pcscd)"
	}
	for _, bin := range []string{"pcscd", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed (run scripts/setup)"
		}
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return "vsmartcard-vpcd is not installed (run scripts/setup)"
	}
	return ""
}

var (
	shared    *PCSCD
	sharedErr error
	once      sync.Once
)

// Require returns the test binary's private pcscd, starting it on first use.
// It skips the test when pcscd cannot run here, and fails it under CI=true.
// Call Shutdown from TestMain after m.Run to stop it.
func Require(tb testing.TB) *PCSCD {
	tb.Helper()
	if r := Reason(); r != "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("end-to-end test cannot run in CI: %s", r)
		}
		tb.Skipf("skipping end-to-end test: %s", r)
	}
	once.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		tb.Fatalf("starting private pcscd: %v", sharedErr)
	}
	return shared
}

// Shutdown stops the shared pcscd if Require started one.
func Shutdown() {
	if shared != nil {
		shared.Stop()
	}
}

// Start starts a private pcscd and sets PCSCLITE_CSOCK_NAME for this process.
func Start() (*PCSCD, error) {
	if r := Reason(); r != "" {
		return nil, errors.New(r)
	}
	dir, err := os.MkdirTemp("", "cardagent-pcscd-")
	if err != nil {
		return nil, err
	}
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	p := &PCSCD{Dir: dir, Port: port}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n", port, VPCDDriver, port)
	if err := os.WriteFile(filepath.Join(dir, "conf", "vpcd"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	os.Setenv("PCSCLITE_CSOCK_NAME", p.Socket())
	if err := p.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *PCSCD) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	run := filepath.Join(p.Dir, "run")
	os.Remove(p.Socket())
	script := `mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec pcscd -f -c "$2"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", run, filepath.Join(p.Dir, "conf"))
	p.out = &Buffer{Max: 1 << 20}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting pcscd: %w", err)
	}
	p.cmd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("pcscd exited at start: %s", p.out.String())
		default:
		}
		if p.ready() {
			p.cmd = cmd
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("pcscd not ready after 10s: %s", p.out.String())
}

// ready reports whether pcscd answers and lists the vpcd readers, and vpcd accepts connections.
func (p *PCSCD) ready() bool {
	if _, err := os.Stat(p.Socket()); err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", p.Addr(0), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	ctx, err := scard.EstablishContext()
	if err != nil {
		return false
	}
	defer ctx.Release()
	readers, err := ctx.ListReaders()
	if err != nil {
		return false
	}
	return len(readers) >= 2
}

// Stop ends pcscd (SIGTERM, then SIGKILL after 3 s) and removes its directory.
func (p *PCSCD) Stop() {
	p.kill()
	os.RemoveAll(p.Dir)
}

// Kill ends pcscd without removing its configuration, as a crash or an
// administrator's `systemctl stop pcscd` would. Restart brings it back.
func (p *PCSCD) Kill() { p.kill() }

func (p *PCSCD) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	p.cmd = nil
}

// Restart stops pcscd and starts it again with the same socket and ports.
func (p *PCSCD) Restart() error {
	p.kill()
	return p.start()
}

// Log returns what pcscd printed, for a failing test's report.
func (p *PCSCD) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	s := p.out.String()
	if len(s) > 8192 {
		s = "..." + s[len(s)-8192:]
	}
	return strings.TrimSpace(s)
}

func freePortPair() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for vpcd")
}

// WaitCard waits until pcscd reports a card in slot's reader (present) or an
// empty reader (!present), failing the test after 10 s. vpcd polls card
// presence every 400 ms, so pcscd notices an insertion or removal late.
func (p *PCSCD) WaitCard(tb testing.TB, slot int, present bool) {
	tb.Helper()
	if err := p.AwaitCard(slot, present, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// AwaitCard is WaitCard that returns an error after timeout instead of
// failing the test, for a caller that recovers (restarts pcscd, retries).
func (p *PCSCD) AwaitCard(slot int, present bool, timeout time.Duration) error {
	reader := ReaderNames[slot]
	deadline := time.Now().Add(timeout)
	for {
		got, err := cardPresent(reader)
		if err == nil && got == present {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reader %q: card present = %v after %v, want %v (last error: %v)", reader, got, timeout, present, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cardPresent(reader string) (bool, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return false, err
	}
	defer ctx.Release()
	st := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	if err := ctx.GetStatusChange(st, 0); err != nil {
		return false, err
	}
	return st[0].EventState&scard.StatePresent != 0, nil
}
