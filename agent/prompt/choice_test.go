package prompt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var twoCards = Choice{
	Origin:  "https://signin.example.org",
	Purpose: "sign in",
	Cards: []CardChoice{
		{Holder: "Dr Jane Example", CardType: "NHS series 9/10 (PIV)", Reader: "Keyboard Reader 00 00", TriesLeft: 3},
		{Holder: "Dr John Other", CardType: "NHS series 8 (Oberthur)", Reader: "USB Reader 01 00", TriesLeft: 1},
	},
}

// TestPinentryChooseOneDeadline: the prompt timeout is the whole choice's:
// each confirmation is given what is left of it, not the whole again.
func TestPinentryChooseOneDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	queue := filepath.Join(dir, "queue")
	if err := os.WriteFile(queue, []byte("cancel\nok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "shown.jsonl")
	p := &Pinentry{Path: scripted, Args: []string{"-queue", queue, "-record", record, "-delay", "1500ms"}}
	c := twoCards
	c.Timeout = 4 * time.Second
	if i, err := p.Choose(context.Background(), c); i != 1 || err != nil {
		t.Fatalf("Choose = %d, %v", i, err)
	}
	shown := readShown(t, record)
	if len(shown) != 2 || shown[0].Timeout != "4" || (shown[1].Timeout != "3" && shown[1].Timeout != "2" && shown[1].Timeout != "1") {
		t.Errorf("SETTIMEOUT per confirmation: %+v, want 4, then what was left after the first answer (1.5 s)", shown)
	}
}

// TestPinentryChoose: pinentry shows one CONFIRM per card in reader order;
// "Use this card" picks it, "Next card" goes on, Cancel on the last card
// cancels. No PIN is asked.
func TestPinentryChoose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		queue   string
		want    int
		wantErr error
		shown   int
	}{
		{name: "first card", queue: "ok\n", want: 0, shown: 1},
		{name: "second card", queue: "cancel\nok\n", want: 1, shown: 2},
		{name: "not OK button goes on too", queue: "notok\nok\n", want: 1, shown: 2},
		{name: "cancel on the last", queue: "cancel\ncancel\n", want: -1, wantErr: ErrCancelled, shown: 2},
		{name: "timeout", queue: "timeout\n", want: -1, wantErr: ErrTimeout, shown: 1},
		{name: "crash", queue: "crash\n", want: -1, wantErr: ErrUnavailable, shown: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			queue := filepath.Join(dir, "queue")
			if err := os.WriteFile(queue, []byte(tc.queue), 0o600); err != nil {
				t.Fatal(err)
			}
			record := filepath.Join(dir, "shown.jsonl")
			p := &Pinentry{Path: scripted, Args: []string{"-queue", queue, "-record", record}}
			i, err := p.Choose(context.Background(), twoCards)
			if i != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Choose = %d, %v; want %d, %v", i, err, tc.want, tc.wantErr)
			}
			shown := readShown(t, record)
			if len(shown) != tc.shown {
				t.Fatalf("%d prompts shown, want %d: %+v", len(shown), tc.shown, shown)
			}
			for k, s := range shown {
				if s.Title != "cardagent: choose a card" || s.OK != "Use this card" || !strings.Contains(s.Desc, "https://signin.example.org asks for a smartcard to sign in") {
					t.Errorf("prompt %d: %+v", k, s)
				}
				if len(s.Commands) == 0 || s.Commands[len(s.Commands)-1] != "CONFIRM" {
					t.Errorf("prompt %d commands %v, want CONFIRM last", k, s.Commands)
				}
				for _, c := range s.Commands {
					if c == "GETPIN" {
						t.Errorf("prompt %d asked for a PIN", k)
					}
				}
			}
			first := shown[0]
			if !strings.Contains(first.Desc, "Card 1 of 2: Dr Jane Example, NHS series 9/10 (PIV), in Keyboard Reader 00 00, 3 PIN tries left") ||
				!strings.Contains(first.Desc, "next card (Dr John Other") || first.Cancel != "Next card" {
				t.Errorf("first prompt: %q, cancel %q", first.Desc, first.Cancel)
			}
			if len(shown) == 2 {
				if s := shown[1]; !strings.Contains(s.Desc, "Card 2 of 2: Dr John Other, NHS series 8 (Oberthur), in USB Reader 01 00, last PIN try") || s.Cancel != "Cancel" {
					t.Errorf("second prompt: %q, cancel %q", s.Desc, s.Cancel)
				}
			}
		})
	}
}

// TestChoiceText: what a choice shows is sanitised like every prompt field:
// one line each, no control characters, bounded.
func TestChoiceText(t *testing.T) {
	c := Choice{Origin: "https://evil.example\nCard holder: Someone Else", Cards: []CardChoice{
		{Holder: "Jane\r\nUse this card", CardType: strings.Repeat("x", 500), Reader: "R\x1b[31m0", TriesLeft: -1},
		{TriesLeft: 0},
	}}
	h := ChoiceHeading(c)
	if strings.ContainsAny(h, "\r\n\x1b") || !strings.HasPrefix(h, "https://evil.example") || !strings.Contains(h, "to sign in") {
		t.Errorf("heading %q", h)
	}
	l := CardLine(c.Cards[0])
	if strings.ContainsAny(l, "\r\n\x1b") || len(l) > 200+120+120+40 || strings.Contains(l, "tries") {
		t.Errorf("line %q", l)
	}
	if l := CardLine(c.Cards[1]); l != "(no holder name), 0 PIN tries left" {
		t.Errorf("line %q", l)
	}
	if _, err := (&Pinentry{Path: scripted}).Choose(context.Background(), Choice{Cards: c.Cards[:1]}); err == nil {
		t.Error("a choice of one card was shown")
	}
}
