package cm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// The shared-host tests run this test binary as another OS user (nobody) in
// two roles, chosen by environment variables:
//   - CARDAGENT_TEST_CM_SERVE=p1,p2,...: an agent's endpoint on the first
//     free of those ports (the real same-user check, a software signer);
//     it prints "port N" and serves until its standard input closes.
//   - CARDAGENT_TEST_CM_PROBE=p1,p2,...: a page's Port Service discovery:
//     GET /PRS/GetPortNumber on every port with CARDAGENT_TEST_CM_ORIGIN,
//     printing one JSON line per port: {"port":P,"status":S,"body":"…"} or
//     {"port":P,"error":"…"}.
func TestMain(m *testing.M) {
	if v := os.Getenv("CARDAGENT_TEST_CM_SERVE"); v != "" {
		os.Exit(childServe(v))
	}
	if v := os.Getenv("CARDAGENT_TEST_CM_PROBE"); v != "" {
		os.Exit(childProbe(v, os.Getenv("CARDAGENT_TEST_CM_ORIGIN")))
	}
	os.Exit(pcsctest.Main(m))
}

func parsePorts(v string) []int {
	var ports []int
	for _, f := range strings.Split(v, ",") {
		p, _ := strconv.Atoi(f)
		ports = append(ports, p)
	}
	return ports
}

func childServe(v string) int {
	s, err := New(zap.NewNop(), nopBackend{}, nopPrompter{}, Options{Ports: parsePorts(v), SigningOrigins: []string{goodOrigin}})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	port, err := s.Listen()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("port", port)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	_ = s.Serve(ctx)
	return 0
}

func childProbe(v, origin string) int {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range parsePorts(v) {
		line := map[string]any{"port": p}
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://localhost:%d%s", p, PathGetPortNumber), nil)
		req.Header.Set("Origin", origin)
		res, err := client.Do(req)
		if err != nil {
			line["error"] = err.Error()
		} else {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			line["status"], line["body"] = res.StatusCode, string(b)
		}
		out, _ := json.Marshal(line)
		fmt.Println(string(out))
	}
	return 0
}

type nopBackend struct{}

func (nopBackend) SignDocuments(context.Context, agent.SignRequest, prompt.Prompter) (*agent.SignResult, error) {
	return nil, errNotForTests
}

type nopPrompter struct{}

func (nopPrompter) PIN(context.Context, prompt.Request) ([]byte, error) { return nil, errNotForTests }

var errNotForTests = errors.New("the shared-host test agent does not sign")

// probeResult is one port's answer to a probe.
type probeResult struct {
	Port   int    `json:"port"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// otherUserBinary copies the test binary where the user nobody can run it.
func otherUserBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to run a process as another user")
		}
		t.Skip("needs root to run a process as another user")
	}
	dir, err := os.MkdirTemp("", "cardagent-cm-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cm.test")
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

const nobody = 65534

// probe runs the Port Service discovery as uid and returns each port's answer.
func probe(t *testing.T, bin string, uid int, ports []int) []probeResult {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"CARDAGENT_TEST_CM_PROBE=" + joinPorts(ports), "CARDAGENT_TEST_CM_ORIGIN=" + goodOrigin}
	cmd.Dir = filepath.Dir(bin)
	if uid != os.Getuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as uid %d: %v", uid, err)
	}
	var res []probeResult
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r probeResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("probe line %q: %v", l, err)
		}
		res = append(res, r)
	}
	return res
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// answered returns the port numbers named by the probe's HTTP 200 answers.
func answered(t *testing.T, res []probeResult) []int {
	t.Helper()
	var got []int
	for _, r := range res {
		if r.Status != http.StatusOK {
			continue
		}
		var pr portReply
		if err := json.Unmarshal([]byte(r.Body), &pr); err != nil {
			t.Fatalf("port %d answered 200 with %q", r.Port, r.Body)
		}
		got = append(got, pr.PortData.PortNumber)
	}
	return got
}

// TestSharedHost runs two users' agents on one host, as on a terminal
// server: this process's (root) and one as nobody, both trying the same
// Port Service ports. Each binds a different port and answers only its own
// user, so each user's page, trying every port and taking the first 200,
// reaches its own agent; the other agent closes the connection unanswered.
func TestSharedHost(t *testing.T) {
	bin := otherUserBinary(t)
	ports := pcsctest.FreePorts(t, 5)

	mine := serveReal(t, ports)

	cmd := exec.Command(bin)
	cmd.Env = []string{"CARDAGENT_TEST_CM_SERVE=" + joinPorts(ports)}
	cmd.Dir = filepath.Dir(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the other user's agent: %v", err)
	}
	var theirs int
	if _, err := fmt.Sscanf(line, "port %d", &theirs); err != nil {
		t.Fatalf("the other user's agent said %q", line)
	}
	if theirs == mine || theirs != ports[1] || mine != ports[0] {
		t.Fatalf("ports: mine %d, theirs %d, of %v: want the first two", mine, theirs, ports)
	}

	for _, tc := range []struct {
		name string
		uid  int
		want int
	}{{"root's page", os.Getuid(), mine}, {"nobody's page", nobody, theirs}} {
		t.Run(tc.name, func(t *testing.T) {
			res := probe(t, bin, tc.uid, ports)
			got := answered(t, res)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("200 answers name ports %v, want only %d; all answers %+v", got, tc.want, res)
			}
			for _, r := range res {
				other := (r.Port == mine || r.Port == theirs) && r.Port != tc.want
				if other && r.Error == "" {
					t.Errorf("the other user's agent on %d answered: %d %q", r.Port, r.Status, r.Body)
				}
			}
		})
	}
}

// serveReal starts an endpoint with the real same-user check and returns its port.
func serveReal(t *testing.T, ports []int) int {
	t.Helper()
	s, err := New(zap.NewNop(), newFakeBackend(t), &countingPrompter{}, Options{Ports: ports, SigningOrigins: []string{goodOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	port, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return port
}

// TestOtherUserRefused: a process of another user gets no answer at all
// (the connection is closed before a byte is read), while the same request
// from this user gets 200.
func TestOtherUserRefused(t *testing.T) {
	bin := otherUserBinary(t)
	port := serveReal(t, []int{0})
	if got := answered(t, probe(t, bin, os.Getuid(), []int{port})); len(got) != 1 {
		t.Fatalf("this user's probe: %v", got)
	}
	res := probe(t, bin, nobody, []int{port})
	if res[0].Error == "" {
		t.Fatalf("another user's request got an answer: %d %q", res[0].Status, res[0].Body)
	}
}
