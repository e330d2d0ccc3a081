//go:build !windows && !darwin

package prompt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/config"
)

// fakeZenity writes a zenity stand-in: each run appends its arguments (one
// per line, then "--") to args.log (and a list's standard input to stdin.log) and takes the next line of answers.txt:
// "ok <text>" prints text and exits 0, "cancel" exits 1, "timeout" exits 5,
// "nodisplay" complains like GTK and exits 1, "hang" sleeps, "crash" exits 3.
func fakeZenity(t *testing.T, answers ...string) (program, argsLog string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "answers.txt"), []byte(strings.Join(answers, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
dir=$(dirname "$0")
for a in "$@"; do printf '%s\n' "$a" >> "$dir/args.log"; done
echo -- >> "$dir/args.log"
case " $* " in *" --list "*) cat >> "$dir/stdin.log";; esac
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n+1)); echo $n > "$dir/count"
line=$(sed -n "${n}p" "$dir/answers.txt")
case "$line" in
ok\ *) printf '%s\n' "${line#ok }"; exit 0;;
ok) exit 0;;
cancel) exit 1;;
timeout) exit 5;;
nodisplay) echo "(zenity:1): Gtk-WARNING **: cannot open display: :9" >&2; exit 1;;
hang) exec sleep 30;;
long) head -c 500 /dev/zero | tr '\0' 7; exit 0;;
*) exit 3;;
esac
`
	p := filepath.Join(dir, "zenity")
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p, filepath.Join(dir, "args.log")
}

func display(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

var withDisplay = display(map[string]string{"DISPLAY": ":9"})

func TestDialogPIN(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []string
		policy  bool
		secret  Secret
		want    string
		wantErr error
		prompts int
	}{
		{name: "answer", answers: []string{"ok 123456"}, want: "123456", prompts: 1},
		{name: "empty answer", answers: []string{"ok"}, want: "", prompts: 1},
		{name: "cancel", answers: []string{"cancel"}, wantErr: ErrCancelled, prompts: 1},
		{name: "own timeout", answers: []string{"timeout"}, wantErr: ErrTimeout, prompts: 1},
		{name: "no display is not a cancel", answers: []string{"nodisplay"}, wantErr: ErrUnavailable, prompts: 1},
		{name: "crash", answers: []string{"crash"}, wantErr: ErrUnavailable, prompts: 1},
		{name: "too long", answers: []string{"long"}, wantErr: ErrUnavailable, prompts: 1},
		{name: "format error re-prompts", answers: []string{"ok 12", "ok 654321"}, policy: true, want: "654321", prompts: 2},
		{name: "format errors end", answers: []string{"ok 1", "ok a", "ok 2"}, policy: true, wantErr: errors.New("format"), prompts: 3},
		{name: "PUK is not PIN-checked", answers: []string{"ok 1234abcd"}, policy: true, secret: SecretPUK, want: "1234abcd", prompts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, argsLog := fakeZenity(t, tc.answers...)
			d := &Dialog{Program: prog, Getenv: withDisplay, Timeout: 10 * time.Second}
			if tc.policy {
				d.Policy = config.Default().PIN
			}
			pin, err := d.PIN(context.Background(), Request{Holder: "Alice SMITH", TriesLeft: 2, Secret: tc.secret})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != nil && tc.wantErr.Error() == "format":
				var fe *config.PINFormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v, want a PIN format error", err)
				}
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && string(pin) != tc.want {
				t.Errorf("PIN %q, want %q", pin, tc.want)
			}
			if tc.wantErr == nil && pin == nil {
				t.Error("nil PIN slice for an answer")
			}
			b, _ := os.ReadFile(argsLog)
			if n := strings.Count(string(b), "\n--\n"); n != tc.prompts {
				t.Errorf("%d dialogs shown, want %d", n, tc.prompts)
			}
		})
	}
}

func TestDialogText(t *testing.T) {
	prog, argsLog := fakeZenity(t, "ok 12", "ok 123456")
	d := &Dialog{Program: prog, Getenv: withDisplay, Policy: config.Default().PIN, Timeout: 7 * time.Second}
	pin, err := d.PIN(context.Background(), Request{
		Origin: "https://signin.example.nhs.uk", Holder: "Alice SMITH_JR", CardType: "NHS series 9/10 (PIV)", TriesLeft: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	Zero(pin)
	b, err := os.ReadFile(argsLog)
	if err != nil {
		t.Fatal(err)
	}
	runs := strings.Split(string(b), "\n--\n")
	first, second := runs[0], runs[1]
	for _, want := range []string{
		"--entry", "--hide-text", "--timeout\n7\n",
		"https://signin.example.nhs.uk asks for your smartcard PIN to sign in.",
		"Card holder: Alice SMITH__JR", // "_" doubled: zenity treats it as a mnemonic
		"Card: NHS series 9/10 (PIV)",
		"2 tries left before the card is blocked.",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("dialog arguments lack %q:\n%s", want, first)
		}
	}
	if !strings.Contains(second, "That PIN cannot be right. The PIN must be 6 to 8 digits") || !strings.Contains(second, "Nothing was sent to the card") {
		t.Errorf("re-prompt does not give the reason:\n%s", second)
	}
	if strings.Contains(string(b), "123456") {
		t.Error("the PIN appears in the dialog's arguments")
	}
}

func TestDialogUnavailable(t *testing.T) {
	prog, argsLog := fakeZenity(t, "ok 123456")
	for _, tc := range []struct {
		name string
		d    *Dialog
		why  string
	}{
		{"no display", &Dialog{Program: prog, Getenv: display(nil)}, "DISPLAY"},
		{"wayland only", &Dialog{Program: prog, Getenv: display(map[string]string{"WAYLAND_DISPLAY": "wayland-0"})}, ""},
		{"no program", &Dialog{Program: filepath.Join(t.TempDir(), "missing"), Getenv: withDisplay}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.d.Available()
			if tc.why == "" {
				if !ok {
					t.Fatalf("unavailable: %s", why)
				}
				return
			}
			if ok || !strings.Contains(why, tc.why) {
				t.Fatalf("Available = %v, %q; want false mentioning %q", ok, why, tc.why)
			}
			if _, err := tc.d.PIN(context.Background(), Request{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("PIN error %v, want ErrUnavailable", err)
			}
			if _, err := tc.d.Confirm(context.Background(), Consent{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Confirm error %v, want ErrUnavailable", err)
			}
		})
	}
	if b, _ := os.ReadFile(argsLog); len(b) != 0 {
		t.Errorf("the dialog program ran although no dialog could be shown:\n%s", b)
	}
}

func TestDialogCancelAndTimeoutCloseIt(t *testing.T) {
	prog, _ := fakeZenity(t, "hang", "hang", "hang")
	d := &Dialog{Program: prog, Getenv: withDisplay}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := d.PIN(ctx, Request{})
	if !errors.Is(err, ErrCancelled) {
		t.Errorf("cancelled: %v, want ErrCancelled", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("cancel took %v", took)
	}

	start = time.Now()
	_, err = d.PIN(context.Background(), Request{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("timeout: %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("timeout took %v", took)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := d.Confirm(ctx, Consent{}); !errors.Is(err, ErrTimeout) {
		t.Errorf("consent with caller's deadline: %v, want ErrTimeout", err)
	}
}

func TestDialogConfirm(t *testing.T) {
	prog, argsLog := fakeZenity(t, "ok", "cancel", "nodisplay")
	d := &Dialog{Program: prog, Getenv: withDisplay}
	c := Consent{Origin: "https://signin.example.nhs.uk", Holder: "Alice SMITH"}
	if ok, err := d.Confirm(context.Background(), c); !ok || err != nil {
		t.Errorf("allow: %v %v", ok, err)
	}
	if ok, err := d.Confirm(context.Background(), c); ok || err != nil {
		t.Errorf("deny: %v %v", ok, err)
	}
	if ok, err := d.Confirm(context.Background(), c); ok || !errors.Is(err, ErrUnavailable) {
		t.Errorf("no display: %v %v, want ErrUnavailable", ok, err)
	}
	b, _ := os.ReadFile(argsLog)
	if !strings.Contains(string(b), "https://signin.example.nhs.uk asks to sign you in") || !strings.Contains(string(b), "--question") {
		t.Errorf("consent dialog arguments:\n%s", b)
	}
}

func TestDialogNeverLogsThePIN(t *testing.T) {
	const marker = "739146"
	prog, _ := fakeZenity(t, "ok "+marker, "ok 12")
	core, logs := observer.New(zapcore.DebugLevel)
	d := &Dialog{Program: prog, Getenv: withDisplay, Log: zap.New(core), Policy: config.Default().PIN}
	pin, err := d.PIN(context.Background(), Request{})
	if err != nil || string(pin) != marker {
		t.Fatalf("%q %v", pin, err)
	}
	_, err = d.PIN(context.Background(), Request{})
	if err == nil {
		t.Fatal("a 2-digit PIN passed")
	}
	if strings.Contains(err.Error(), "12") && strings.Contains(err.Error(), "\"12\"") {
		t.Errorf("error quotes the PIN: %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged: the check below would pass vacuously")
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+strings.Join(fieldStrings(e.ContextMap()), " "), marker) {
			t.Errorf("PIN in log line %q %v", e.Message, e.ContextMap())
		}
	}
}

func fieldStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmtAny(v), "\n", " "), "\t", " ")))
	}
	return out
}

func fmtAny(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

func TestChoose(t *testing.T) {
	prog, _ := fakeZenity(t, "ok 111111", "ok 222222")
	pe := answerPrompter("333333")
	dlg := &Dialog{Program: prog, Getenv: withDisplay}
	noDisplay := &Dialog{Program: prog, Getenv: display(nil)}

	for _, tc := range []struct {
		name    string
		backend string
		dialog  *Dialog
		pe      Prompter
		want    string // PIN answered, "" for no prompter, "unavailable" for ErrUnavailable
	}{
		{"auto with display", BackendAuto, dlg, pe, "111111"},
		{"auto without display", BackendAuto, noDisplay, pe, "333333"},
		{"auto without anything", BackendAuto, nil, nil, ""},
		{"auto, no display, no pinentry", BackendAuto, noDisplay, nil, "unavailable"},
		{"dialog", BackendDialog, dlg, pe, "222222"},
		{"dialog without display", BackendDialog, noDisplay, pe, "unavailable"},
		{"pinentry", BackendPinentry, dlg, pe, "333333"},
		{"pinentry missing", BackendPinentry, dlg, nil, ""},
		{"unknown", "kdialog", dlg, pe, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var peArg Prompter
			if tc.pe != nil {
				peArg = tc.pe
			}
			p, why := Choose(tc.backend, tc.dialog, peArg)
			if why == "" {
				t.Error("no reason given")
			}
			if tc.want == "" {
				if p != nil {
					t.Fatalf("got a prompter (%s)", why)
				}
				return
			}
			if p == nil {
				t.Fatalf("no prompter: %s", why)
			}
			pin, err := p.PIN(context.Background(), Request{})
			if tc.want == "unavailable" {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil || string(pin) != tc.want {
				t.Fatalf("PIN %q %v, want %q", pin, err, tc.want)
			}
		})
	}
}

type answerPrompter string

func (a answerPrompter) PIN(context.Context, Request) ([]byte, error) { return []byte(a), nil }
