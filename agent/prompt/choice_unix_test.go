//go:build !windows && !darwin

package prompt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDialogChoose: the desktop dialog is one zenity list with a hidden
// number column (what zenity prints), the cells on its standard input.
func TestDialogChoose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []string
		want    int
		wantErr error
		shown   int
	}{
		{name: "second", answers: []string{"ok 2"}, want: 1, shown: 1},
		{name: "first", answers: []string{"ok 1"}, want: 0, shown: 1},
		{name: "nothing picked asks again", answers: []string{"ok", "ok 2"}, want: 1, shown: 2},
		{name: "nothing picked three times", answers: []string{"ok", "ok 7", "ok"}, want: -1, wantErr: ErrCancelled, shown: 3},
		{name: "cancel", answers: []string{"cancel"}, want: -1, wantErr: ErrCancelled, shown: 1},
		{name: "timeout", answers: []string{"timeout"}, want: -1, wantErr: ErrTimeout, shown: 1},
		{name: "no display", answers: []string{"nodisplay"}, want: -1, wantErr: ErrUnavailable, shown: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, argsLog := fakeZenity(t, tc.answers...)
			d := &Dialog{Program: prog, Getenv: withDisplay}
			c := twoCards
			c.Cards = append([]CardChoice{}, c.Cards...)
			c.Cards[1].Holder = "--timeout" // a cell is never read as an option
			i, err := d.Choose(context.Background(), c)
			if i != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Choose = %d, %v; want %d, %v", i, err, tc.want, tc.wantErr)
			}
			in, err := os.ReadFile(filepath.Join(filepath.Dir(prog), "stdin.log"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "1\nDr Jane Example\nNHS series 9/10 (PIV)\nKeyboard Reader 00 00\n3\n2\n--timeout\nNHS series 8 (Oberthur)\nUSB Reader 01 00\n1\n"; !strings.HasPrefix(string(in), want) {
				t.Errorf("zenity's input %q, want %q", in, want)
			}
			b, err := os.ReadFile(argsLog)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "Dr Jane Example") {
				t.Error("a holder name is on zenity's command line")
			}
			n, err := os.ReadFile(filepath.Join(filepath.Dir(prog), "count"))
			if err != nil || strings.TrimSpace(string(n)) != strconv.Itoa(tc.shown) {
				t.Fatalf("%s dialogs, want %d (%v)", n, tc.shown, err)
			}
			args := strings.Split(string(b), "\n")
			joined := strings.Join(args, " ")
			if args[0] != "--list" || !strings.Contains(joined, "--hide-column 1 --print-column 1") ||
				!strings.Contains(joined, "--column # --column Card holder --column Card --column Reader --column PIN tries left") ||
				!strings.Contains(joined, "https://signin.example.org asks for a smartcard to sign in") ||
				!strings.Contains(joined, "cardagent: choose a card") {
				t.Errorf("zenity args: %q", args)
			}
		})
	}
}

func TestListAnswer(t *testing.T) {
	for _, tc := range []struct {
		out  string
		n    int
		want int
	}{
		{"1\n", 2, 0}, {"2\n", 2, 1}, {"3\n", 2, -1}, {"0\n", 2, -1}, {"\n", 2, -1}, {"1|2\n", 2, -1}, {"x\n", 2, -1}, {"-1\n", 2, -1},
	} {
		if got := listAnswer(tc.out, tc.n); got != tc.want {
			t.Errorf("listAnswer(%q, %d) = %d, want %d", tc.out, tc.n, got, tc.want)
		}
	}
}
