package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

const (
	insChangeRef  = 0x24
	insResetRetry = 0x2C
	newTestPIN    = "582064"
)

// scriptedSecrets answers each prompt by the secret asked: the next answer
// queued for that kind.
func scriptedSecrets(answers map[prompt.Secret][]string) *fakePrompter {
	next := map[prompt.Secret]int{}
	return &fakePrompter{answer: func(_ context.Context, req prompt.Request, _ int) ([]byte, error) {
		list := answers[req.Secret]
		i := next[req.Secret]
		next[req.Secret]++
		if i >= len(list) {
			return nil, fmt.Errorf("%w: script ran out of %q answers", prompt.ErrCancelled, req.Secret)
		}
		if list[i] == "<cancel>" {
			return nil, prompt.ErrCancelled
		}
		return []byte(list[i]), nil
	}}
}

func pinPolicy(s *CardService) { s.PINPolicy = config.Default().PIN }

func TestChangePIN(t *testing.T) {
	h := newHarness(t, pinPolicy)
	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, Surname: "SMITH", Forename: "MARY", DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPIN:         {markerPIN},
		prompt.SecretNewPIN:      {newTestPIN},
		prompt.SecretNewPINAgain: {newTestPIN},
	})
	if err := h.svc.ChangePIN(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if card.PIN() != newTestPIN || card.PINTries() != 3 {
		t.Fatalf("card PIN %q tries %d after the change", card.PIN(), card.PINTries())
	}
	reqs := p.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d prompts, want 3", len(reqs))
	}
	if r := reqs[0]; r.Holder != "Mary SMITH" || r.TriesLeft != 3 || r.Secret != prompt.SecretPIN || r.Purpose != "change your PIN" || r.CardType == "" {
		t.Errorf("first prompt %+v", r)
	}
	if reqs[1].Secret != prompt.SecretNewPIN || reqs[2].Secret != prompt.SecretNewPINAgain {
		t.Errorf("prompts asked %q then %q", reqs[1].Secret, reqs[2].Secret)
	}
	// The new PIN signs in; the old one does not.
	tok, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(newTestPIN))
	if err != nil {
		t.Fatalf("sign-in with the new PIN: %v", err)
	}
	verifyToken(t, tok, testOrigin, testChallenge)
}

func TestChangePINLocalChecksCostNoTry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers map[prompt.Secret][]string
		code    wire.Code // "" = success after re-prompts
		prompts int
	}{
		{"new PIN too short, then fine", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {"12", newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
		}, "", 4},
		{"letters in the new PIN three times", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {"abcdef", "abcdeg", "abcdeh"},
		}, wire.CodePINFormat, 4},
		{"same as the current PIN", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {markerPIN, newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
		}, "", 4},
		{"confirmation differs, then matches", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {newTestPIN, newTestPIN}, prompt.SecretNewPINAgain: {"582065", newTestPIN},
		}, "", 5},
		{"confirmation never matches", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {newTestPIN, newTestPIN, newTestPIN}, prompt.SecretNewPINAgain: {"1111111", "2222222", "3333333"},
		}, wire.CodePINFormat, 7},
		{"current PIN malformed", map[prompt.Secret][]string{
			prompt.SecretPIN: {"12 34", "x", ""},
		}, wire.CodePINFormat, 3},
		{"cancel at the new PIN", map[prompt.Secret][]string{
			prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {"<cancel>"},
		}, wire.CodeUserCancelled, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, pinPolicy)
			card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, nil)
			insertPIV(h, "R0", card)
			card.ClearLog()
			p := scriptedSecrets(tc.answers)
			err := h.svc.ChangePIN(context.Background(), p)
			if got := codeOf(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if n := len(p.requests()); n != tc.prompts {
				t.Errorf("%d prompts, want %d", n, tc.prompts)
			}
			changes := countINS(card.INSLog(), insChangeRef)
			if tc.code == "" {
				if changes != 1 || card.PIN() != newTestPIN {
					t.Errorf("%d CHANGE REFERENCE DATA sent, card PIN %q", changes, card.PIN())
				}
			} else {
				// (VERIFY without data, which reads the counter, may appear.)
				if changes != 0 || card.PIN() != markerPIN {
					t.Errorf("a refused entry reached the card: INS log % X", card.INSLog())
				}
				var e *Error
				if errors.As(err, &e) && !strings.Contains(e.Message, "Nothing was sent") && tc.code == wire.CodePINFormat {
					t.Errorf("message %q does not say nothing was sent", e.Message)
				}
			}
			if card.PINTries() != 3 {
				t.Errorf("PIN counter %d, want 3 (no try spent)", card.PINTries())
			}
			for i, r := range p.requests()[1:] {
				if r.Secret == prompt.SecretNewPIN && i > 0 && r.Retry == "" {
					t.Errorf("re-prompt %d gives no reason", i)
				}
			}
		})
	}
}

func TestChangePINWrongCurrentPIN(t *testing.T) {
	h := newHarness(t, pinPolicy)
	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPIN: {"000000"}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	err := h.svc.ChangePIN(context.Background(), p)
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeWrongPIN || e.TriesLeft != 2 {
		t.Fatalf("error %v, want wrong_pin with 2 tries left", err)
	}
	if !strings.Contains(e.Message, "2 tries left before the card is blocked") || !strings.Contains(e.Message, "not been changed") {
		t.Errorf("message %q", e.Message)
	}
	if s := err.Error(); strings.Contains(s, "000000") || strings.Contains(s, newTestPIN) || strings.Contains(s, markerPIN) {
		t.Errorf("a PIN in the error: %q", s)
	}
	if countINS(card.INSLog(), insChangeRef) != 1 || card.PINTries() != 2 {
		t.Errorf("card: %d changes, %d tries; want one attempt, never retried", countINS(card.INSLog(), insChangeRef), card.PINTries())
	}
	if r := h.svc.Status().Readers[0].Card.PIN; r == nil || r.TriesLeft != 2 {
		t.Errorf("status PIN %+v, want 2 tries left", r)
	}
}

func TestChangePINBlockedCard(t *testing.T) {
	h := newHarness(t, pinPolicy)
	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, func(c *vpiv.Config) { c.PINTriesLeft = -1 })
	insertPIV(h, "R0", card)
	p := scriptedSecrets(nil)
	err := h.svc.ChangePIN(context.Background(), p)
	if codeOf(err) != wire.CodePINBlocked || len(p.requests()) != 0 {
		t.Fatalf("error %v after %d prompts; want pin_blocked before any prompt", err, len(p.requests()))
	}
	if !strings.Contains(err.Error(), "Unblock") {
		t.Errorf("message does not say how to unblock: %v", err)
	}
}

func TestUnblockPIN(t *testing.T) {
	h := newHarness(t, pinPolicy)
	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, func(c *vpiv.Config) { c.PINTriesLeft = -1 })
	insertPIV(h, "R0", card)
	if st := h.svc.Status().Readers[0].Card.PIN; st == nil || !st.Blocked {
		t.Fatalf("card not seen as blocked: %+v", st)
	}
	// A wrong PUK first: explained, tries left, nothing retried.
	p := scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPUK: {"87654321"}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	err := h.svc.UnblockPIN(context.Background(), p)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeWrongPUK || e.TriesLeft != 2 || !strings.Contains(e.Message, "2 PUK tries left") {
		t.Fatalf("wrong PUK: %v (%+v)", err, e)
	}
	if countINS(card.INSLog(), insResetRetry) != 1 || card.PUKTries() != 2 {
		t.Errorf("PUK: %d resets sent, %d tries left", countINS(card.INSLog(), insResetRetry), card.PUKTries())
	}
	if p.requests()[0].Secret != prompt.SecretPUK {
		t.Errorf("first prompt asked %q, want the PUK", p.requests()[0].Secret)
	}

	p = scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPUK: {vpiv.DefaultPUK}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	if err := h.svc.UnblockPIN(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if card.PINTries() != 3 || card.PIN() != newTestPIN {
		t.Fatalf("after unblock: tries %d PIN %q", card.PINTries(), card.PIN())
	}
	if st := h.svc.Status().Readers[0].Card.PIN; st == nil || st.Blocked || st.TriesLeft != 3 {
		t.Errorf("status after unblock: %+v", st)
	}
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(newTestPIN)); err != nil {
		t.Fatalf("sign-in after unblock: %v", err)
	}
}

func TestUnblockPINBlockedPUK(t *testing.T) {
	h := newHarness(t, pinPolicy)
	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, func(c *vpiv.Config) { c.PINTriesLeft, c.PUKTriesLeft = -1, 1 })
	insertPIV(h, "R0", card)
	p := scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPUK: {"87654321"}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	err := h.svc.UnblockPIN(context.Background(), p)
	if codeOf(err) != CodePUKBlocked || !strings.Contains(err.Error(), "Registration Authority") {
		t.Fatalf("last PUK try wrong: %v", err)
	}
}

func TestPINManagementNoCardAndBusy(t *testing.T) {
	h := newHarness(t, pinPolicy)
	p := scriptedSecrets(nil)
	if err := h.svc.ChangePIN(context.Background(), p); codeOf(err) != wire.CodeNoCard {
		t.Errorf("no card: %v", err)
	}
	if err := h.svc.ChangePIN(context.Background(), nil); codeOf(err) != wire.CodePromptUnavailable {
		t.Errorf("no prompter: %v", err)
	}

	card := newCard(t, testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	release := make(chan struct{})
	bp := blockingPrompter(release, markerPIN)
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, bp)
		done <- err
	}()
	<-bp.shown
	if err := h.svc.ChangePIN(context.Background(), p); codeOf(err) != wire.CodeBusy {
		t.Errorf("during a sign-in: %v, want busy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Removing the card closes the prompt and nothing is sent.
	bp2 := blockingPrompter(make(chan struct{}), markerPIN)
	go func() { done <- h.svc.ChangePIN(context.Background(), bp2) }()
	<-bp2.shown
	h.remove("R0")
	if err := <-done; codeOf(err) != wire.CodeCardRemoved || !strings.Contains(err.Error(), "removed") {
		t.Errorf("card removed during the prompt: %v", err)
	}
}

func TestPINManagementErrorWords(t *testing.T) {
	for _, code := range []wire.Code{wire.CodeUserCancelled, wire.CodeTimeout, wire.CodeCardRemoved, wire.CodeNoCard, wire.CodeBusy, wire.CodePromptUnavailable, wire.CodeServiceUnavailable, wire.CodeCardError} {
		e := pinManagementError(&Error{Code: code, Message: "x", TriesLeft: -1}, false)
		if e.Code != code || e.Message == "x" || e.Message == "" {
			t.Errorf("%s: %+v", code, e)
		}
	}
}
