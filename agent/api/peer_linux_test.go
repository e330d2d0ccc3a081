package api

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestPeerSameUser checks real connections with the real check (netlink
// sock_diag): a client of this process's user passes, over IPv4 and IPv6.
func TestPeerSameUser(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{}, nil) // the real check
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			r := exec.Command(os.Args[0])
			r.Env = append(os.Environ(), "CARDAGENT_TEST_PEER_URL=ws://"+host+":"+itoa(ts.port)+PathWS, "CARDAGENT_TEST_PEER_ORIGIN="+goodOrigin)
			out, err := r.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "status 101" {
				t.Fatalf("same-user client: %s (%v)", out, err)
			}
		})
	}
}

// TestPeerOtherUser runs a client as another uid (nobody): the agent must
// close its connection as soon as it is accepted, before reading the
// request (the client sees no HTTP answer at all), while the same client
// as our own uid is accepted.
func TestPeerOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	ts := startServer(t, newFakeBackend(), nil, Options{}, nil) // the real check
	// The test binary lives in a 0700 build directory: copy it where nobody can run it.
	dir, err := os.MkdirTemp("", "cardagent-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, uid uint32, host string) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{"CARDAGENT_TEST_PEER_URL=ws://" + host + ":" + itoa(ts.port) + PathWS, "CARDAGENT_TEST_PEER_ORIGIN=" + goodOrigin}
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			if got := run(t, 65534, host); !strings.HasPrefix(got, "error ") {
				t.Errorf("client as nobody: %q, want the connection closed without an answer", got)
			}
			if got := run(t, 0, host); got != "status 101" {
				t.Errorf("client as root (our uid): %q, want status 101", got)
			}
		})
	}
	refused := 0
	// One line per listener (IPv4, IPv6): each logs its first refusal.
	for _, e := range ts.logs.FilterMessage("connection from another user or an unknown process refused").All() {
		if strings.Contains(e.ContextMap()["error"].(string), "uid 65534") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals of uid 65534 logged, want 2", refused)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
