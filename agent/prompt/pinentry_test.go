package prompt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// scripted is the path of testdata/pinentry/scripted, built once for this binary.
var scripted string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cardagent-pinentry-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	scripted = filepath.Join(dir, "scripted"+exe)
	// go test puts its own go first on PATH.
	build := exec.Command("go", "build", "-o", scripted, "../../testdata/pinentry/scripted")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the scripted pinentry: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// shown is what the scripted pinentry records for one prompt.
type shown struct {
	PID      int      `json:"pid"`
	Title    string   `json:"title"`
	Desc     string   `json:"desc"`
	Prompt   string   `json:"prompt"`
	Error    string   `json:"error"`
	Timeout  string   `json:"timeout"`
	Commands []string `json:"commands"`
	Action   string   `json:"action"`
	OK       string   `json:"ok"`
	Cancel   string   `json:"cancel"`
}

func readShown(t *testing.T, path string) []shown {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []shown
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s shown
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		out = append(out, s)
	}
	return out
}

const marker = "739146" // a PIN that must never show up in logs or errors

var signIn = Request{
	Origin:    "https://signin.example.org",
	Holder:    "Dr Jane Example",
	CardType:  "NHS series 9/10 (PIV)",
	TriesLeft: 2,
	Purpose:   "sign in",
}

func TestPinentry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		args     []string
		req      Request
		timeout  time.Duration // Pinentry.Timeout
		ctx      func() (context.Context, context.CancelFunc)
		wantPIN  string
		wantErr  error
		wantText string        // in the error
		within   time.Duration // the call must end this fast
		noLog    bool          // nothing is logged (no process started)
		check    func(t *testing.T, s shown)
	}{
		{
			name: "PIN", args: []string{"-pin", marker}, req: signIn, wantPIN: marker, within: 5 * time.Second,
			check: func(t *testing.T, s shown) {
				for _, want := range []string{
					"https://signin.example.org asks for your smartcard PIN to sign in.",
					"Card holder: Dr Jane Example",
					"Card: NHS series 9/10 (PIV)",
					"2 tries left before the card is blocked.",
				} {
					if !strings.Contains(s.Desc, want) {
						t.Errorf("description %q lacks %q", s.Desc, want)
					}
				}
				if len(strings.Split(s.Desc, "\n")) != 4 {
					t.Errorf("description %q: want 4 lines", s.Desc)
				}
				if s.Error != "" || s.Prompt != "PIN:" || s.Title == "" || s.Timeout != "10" {
					t.Errorf("shown %+v", s)
				}
				want := []string{"SETTITLE", "SETDESC", "SETPROMPT", "SETTIMEOUT", "GETPIN"}
				if strings.Join(s.Commands, " ") != strings.Join(want, " ") {
					t.Errorf("commands %v, want %v (no OPTION or SETKEYINFO that could cache the PIN)", s.Commands, want)
				}
			},
		},
		{
			name: "last try and retry message", args: []string{"-pin", "654321"}, wantPIN: "654321", within: 5 * time.Second,
			req: Request{Origin: "https://signin.example.org", TriesLeft: 1, Retry: "Wrong PIN.\nTry again", Timeout: 7 * time.Second},
			check: func(t *testing.T, s shown) {
				if !strings.Contains(s.Desc, "Last try before the card is blocked.") || strings.Contains(s.Desc, "tries left") {
					t.Errorf("description %q", s.Desc)
				}
				if s.Error != "Wrong PIN. Try again" {
					t.Errorf("error shown %q", s.Error)
				}
				if s.Timeout != "7" {
					t.Errorf("SETTIMEOUT %q, want the request's 7", s.Timeout)
				}
			},
		},
		{
			name: "tries unknown, no origin", args: []string{"-pin", "11111111"}, wantPIN: "11111111",
			req: Request{TriesLeft: -1, Purpose: "change the PIN"}, timeout: -1, within: 5 * time.Second,
			check: func(t *testing.T, s shown) {
				if s.Desc != "Enter your smartcard PIN to change the PIN." {
					t.Errorf("description %q", s.Desc)
				}
				if s.Timeout != "60" {
					t.Errorf("SETTIMEOUT %q, want the default 60", s.Timeout)
				}
			},
		},
		{
			name: "percent, CR and LF in the PIN", args: []string{"-pin", "a%b\r\nc%"}, req: signIn, wantPIN: "a%b\r\nc%", within: 5 * time.Second,
		},
		{
			name: "empty answer", args: []string{"-pin", ""}, req: signIn, wantPIN: "", within: 5 * time.Second,
		},
		{
			name: "hostile holder name", args: []string{"-pin", "123456"}, wantPIN: "123456", within: 5 * time.Second,
			req: Request{Origin: "https://signin.example.org", Holder: "Eve\u202egnp.exe\nCard: forged\x00" + strings.Repeat("x", 5000), TriesLeft: 3},
			check: func(t *testing.T, s shown) {
				lines := strings.Split(s.Desc, "\n")
				if len(lines) != 3 || strings.ContainsAny(s.Desc, "\u202e\x00") {
					t.Fatalf("description %q: want 3 lines, the holder on one, no control characters", s.Desc)
				}
				want := "Card holder: Evegnp.exe Card: forged " + strings.Repeat("x", 200-len("Evegnp.exe Card: forged "))
				if lines[1] != want {
					t.Errorf("holder line %q, want %q (cleaned, cut to 200 bytes)", lines[1], want)
				}
			},
		},
		{
			name: "long description is cut to fit a command line", args: []string{"-pin", "123456"}, wantPIN: "123456", within: 5 * time.Second,
			req: Request{
				Origin: "https://" + strings.Repeat("a", 250) + ".example", Holder: strings.Repeat("\U0001F600", 200),
				CardType: strings.Repeat("\u00e9", 200), TriesLeft: 3, Retry: strings.Repeat("\u00e9", 1000),
			},
			check: func(t *testing.T, s shown) {
				lines := strings.Split(s.Desc, "\n")
				if len(lines) != 4 || !strings.HasPrefix(lines[0], "https://"+strings.Repeat("a", 250)) ||
					lines[3] != "3 tries left before the card is blocked." || len(lines[1]) > 220 || len(lines[2]) > 130 {
					t.Errorf("description %q: want every line, holder and card type cut short", s.Desc)
				}
				if n := len(s.Error); n == 0 || n > 1000 {
					t.Errorf("error shown has %d bytes", n)
				}
			},
		},
		{
			name: "cancel", args: []string{"-action", "cancel"}, req: signIn, wantErr: ErrCancelled, within: 5 * time.Second,
		},
		{
			name: "pinentry's own timeout", args: []string{"-action", "timeout"}, req: signIn, wantErr: ErrTimeout, within: 5 * time.Second,
		},
		{
			name: "no display", args: []string{"-action", "error"}, req: signIn, wantErr: ErrUnavailable,
			wantText: "Inappropriate ioctl", within: 5 * time.Second,
		},
		{
			name: "hang is killed at the timeout", args: []string{"-action", "hang"}, req: signIn, timeout: 300 * time.Millisecond,
			wantErr: ErrTimeout, within: 2 * time.Second,
		},
		{
			name: "slow answer within the timeout", args: []string{"-delay", "300ms", "-pin", "123456"}, req: signIn, timeout: 5 * time.Second,
			wantPIN: "123456", within: 5 * time.Second,
		},
		{
			name: "crash", args: []string{"-action", "crash"}, req: signIn, wantErr: ErrUnavailable, wantText: "exit status 1", within: 5 * time.Second,
		},
		{
			name: "exits before the greeting", args: []string{"-action", "no-greeting"}, req: signIn, wantErr: ErrUnavailable, within: 5 * time.Second,
		},
		{
			name: "line too long", args: []string{"-action", "garbage"}, req: signIn, wantErr: ErrUnavailable, wantText: "line longer than 4096 bytes", within: 5 * time.Second,
		},
		{
			name: "PIN then error", args: []string{"-action", "pin-then-err", "-pin", marker}, req: signIn, wantErr: ErrCancelled, within: 5 * time.Second,
		},
		{
			name: "ignores BYE", args: []string{"-action", "ignore-bye", "-pin", "123456"}, req: signIn, wantPIN: "123456", within: 5 * time.Second,
		},
		{
			name: "context cancelled", args: []string{"-action", "hang"}, req: signIn, wantErr: ErrCancelled, within: 2 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
		},
		{
			name: "context deadline", args: []string{"-action", "hang"}, req: signIn, wantErr: ErrTimeout, within: 2 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
		},
		{
			name: "context already cancelled", args: []string{"-pin", "123456"}, req: signIn, wantErr: ErrCancelled, within: time.Second, noLog: true,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			record := filepath.Join(t.TempDir(), "shown.jsonl")
			p := &Pinentry{Path: scripted, Args: append([]string{"-record", record}, tc.args...), Log: zap.New(core), Timeout: 10 * time.Second}
			switch {
			case tc.timeout < 0:
				p.Timeout = 0
			case tc.timeout > 0:
				p.Timeout = tc.timeout
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			start := time.Now()
			pin, err := p.PIN(ctx, tc.req)
			elapsed := time.Since(start)
			if elapsed > tc.within {
				t.Errorf("took %v, want at most %v", elapsed, tc.within)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || pin != nil {
					t.Fatalf("PIN() = %q, %v; want %v", pin, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("error %q lacks %q", err, tc.wantText)
				}
			} else {
				if err != nil {
					t.Fatalf("PIN() error %v", err)
				}
				if pin == nil || string(pin) != tc.wantPIN {
					t.Fatalf("PIN() = %q, want %q", pin, tc.wantPIN)
				}
				Zero(pin)
			}
			if err != nil && strings.Contains(err.Error(), marker) {
				t.Errorf("error %q contains the PIN", err)
			}
			if logs.Len() == 0 && !tc.noLog {
				t.Error("nothing logged at debug level: the marker check proves nothing")
			}
			assertNoMarker(t, logs)
			for _, s := range readShown(t, record) {
				if !processGone(s.PID) {
					t.Errorf("pinentry process %d still running", s.PID)
				}
				if tc.check != nil {
					tc.check(t, s)
				}
			}
		})
	}
}

// assertNoMarker fails if the marker PIN is in any log entry or field.
func assertNoMarker(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(text, marker) {
			t.Errorf("log entry %q contains the PIN", text)
		}
	}
}

func TestPinentryUnavailable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    Pinentry
		also error
	}{
		{"no path", Pinentry{}, nil},
		{"missing program", Pinentry{Path: filepath.Join(t.TempDir(), "no-such-pinentry")}, fs.ErrNotExist},
		{"not a pinentry", Pinentry{Path: scripted, Args: []string{"-unknown-flag"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pin, err := tc.p.PIN(context.Background(), signIn)
			if !errors.Is(err, ErrUnavailable) || pin != nil {
				t.Fatalf("PIN() = %q, %v; want ErrUnavailable", pin, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("error %v does not match %v", err, tc.also)
			}
		})
	}
}

// TestPinentryConcurrent: prompts for several cards at once each get their
// own process and answer.
func TestPinentryConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("%08d", i)
			p := &Pinentry{Path: scripted, Args: []string{"-pin", want, "-delay", "50ms"}}
			pin, err := p.PIN(context.Background(), signIn)
			if err != nil || string(pin) != want {
				errs <- fmt.Errorf("prompt %d: %q, %v", i, pin, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestScriptedQueue: the scripted pinentry's queue file steers successive
// prompts (how an end-to-end test plays a wrong PIN, then the right one).
func TestScriptedQueue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	queue := filepath.Join(dir, "queue")
	if err := os.WriteFile(queue, []byte("pin 000000\ncancel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "shown.jsonl")
	p := &Pinentry{Path: scripted, Args: []string{"-queue", queue, "-record", record, "-pin", "123456"}}
	pin, err := p.PIN(context.Background(), signIn)
	if err != nil || string(pin) != "000000" {
		t.Fatalf("first prompt: %q, %v", pin, err)
	}
	retry := signIn
	retry.TriesLeft, retry.Retry = 1, "Wrong PIN."
	if _, err := p.PIN(context.Background(), retry); !errors.Is(err, ErrCancelled) {
		t.Fatalf("second prompt: %v, want ErrCancelled", err)
	}
	pin, err = p.PIN(context.Background(), signIn)
	if err != nil || string(pin) != "123456" {
		t.Fatalf("third prompt (queue empty): %q, %v", pin, err)
	}
	shown := readShown(t, record)
	if len(shown) != 3 || shown[1].Error != "Wrong PIN." || !strings.Contains(shown[1].Desc, "Last try") || shown[2].Action != "pin" {
		t.Fatalf("shown %+v", shown)
	}
}

func TestDescription(t *testing.T) {
	cases := []struct {
		req  Request
		want string
	}{
		{signIn, "https://signin.example.org asks for your smartcard PIN to sign in.\nCard holder: Dr Jane Example\nCard: NHS series 9/10 (PIV)\n2 tries left before the card is blocked."},
		{Request{Origin: "https://a.example", TriesLeft: 1}, "https://a.example asks for your smartcard PIN to sign in.\nLast try before the card is blocked."},
		{Request{Origin: "https://a.example", TriesLeft: 0}, "https://a.example asks for your smartcard PIN to sign in.\nThe card is blocked."},
		{Request{TriesLeft: -1, Purpose: "unblock"}, "Enter your smartcard PIN to unblock."},
		{Request{TriesLeft: -1, Holder: " \t\u202e "}, "Enter your smartcard PIN to sign in."},
	}
	for _, tc := range cases {
		if got := Description(tc.req); got != tc.want {
			t.Errorf("Description(%+v) =\n%q\nwant\n%q", tc.req, got, tc.want)
		}
	}
}
