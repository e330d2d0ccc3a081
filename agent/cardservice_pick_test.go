package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestPickRule(t *testing.T) {
	ready := func(id string) candidate { return candidate{state: wire.CardReady, id: id} }
	blocked := func(id string) candidate { return candidate{state: wire.CardReady, id: id, blocked: true} }
	other := func(state string) candidate { return candidate{state: state} }
	for _, tc := range []struct {
		name      string
		cards     []candidate
		named     string
		blockedOK bool
		index     int
		usable    []int
		err       error
	}{
		{name: "no card", index: -1},
		{name: "one ready", cards: []candidate{ready("a")}, index: 0, usable: []int{0}},
		{name: "ready after unusable ones", cards: []candidate{other(wire.CardMute), other(wire.CardUnsupported), ready("c")}, index: 2, usable: []int{2}},
		{name: "two ready: the user chooses", cards: []candidate{ready("a"), ready("b")}, index: -1, usable: []int{0, 1}},
		{name: "blocked one is not a choice", cards: []candidate{blocked("a"), ready("b")}, index: 1, usable: []int{1}},
		{name: "blocked ones count for an unblock", cards: []candidate{blocked("a"), ready("b")}, blockedOK: true, index: -1, usable: []int{0, 1}},
		{name: "all blocked: the first, for its pin_blocked", cards: []candidate{blocked("a"), blocked("b")}, index: 0, usable: []int{0}},
		{name: "none ready", cards: []candidate{other(wire.CardMute), other(wire.CardFailed)}, index: -1},
		{name: "named among two", cards: []candidate{ready("a"), ready("b")}, named: "b", index: 1},
		{name: "named, not ready", cards: []candidate{other(wire.CardMute), ready("b")}, named: "b", index: 1},
		{name: "named blocked card is still that card", cards: []candidate{blocked("a"), ready("b")}, named: "a", index: 0},
		{name: "named, absent", cards: []candidate{ready("a"), ready("b")}, named: "c", index: -1, err: ErrCardNotFound},
		{name: "named, no card at all", named: "c", index: -1, err: ErrCardNotFound},
		{name: "named, case matters", cards: []candidate{ready("ab")}, named: "AB", index: -1, err: ErrCardNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, usable, err := pickRule(tc.cards, tc.named, tc.blockedOK)
			if i != tc.index || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) || !equalInts(usable, tc.usable) {
				t.Errorf("pickRule = %d %v %v, want %d %v %v", i, usable, err, tc.index, tc.usable, tc.err)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// choosingPrompter is a fakePrompter that also chooses a card: choose
// returns the index to pick (or an error) and every Choice is recorded.
type choosingPrompter struct {
	*fakePrompter
	choose func(ctx context.Context, c prompt.Choice) (int, error)

	cmu     sync.Mutex
	choices []prompt.Choice
}

func (p *choosingPrompter) Choose(ctx context.Context, c prompt.Choice) (int, error) {
	p.cmu.Lock()
	p.choices = append(p.choices, c)
	p.cmu.Unlock()
	return p.choose(ctx, c)
}

func (p *choosingPrompter) choiceList() []prompt.Choice {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	return append([]prompt.Choice(nil), p.choices...)
}

func chooseIndex(i int, pins ...string) *choosingPrompter {
	return &choosingPrompter{fakePrompter: answerPIN(pins...), choose: func(context.Context, prompt.Choice) (int, error) { return i, nil }}
}

// twoCards inserts two cards of different holders, FIRST in R0 and SECOND in R1.
func twoCards(t *testing.T, h *harness) (a, b *vpiv.Card) {
	t.Helper()
	a = newCard(t, testpki.CardSpec{Surname: "FIRST", DaysLeft: 400}, nil)
	b = newCard(t, testpki.CardSpec{Surname: "SECOND", DaysLeft: 400, KeyIndex: 1}, nil)
	insertPIV(h, "R0", a)
	insertPIV(h, "R1", b)
	return a, b
}

// holderOfToken is the subject CN of a token's certificate.
func holderOfToken(t *testing.T, cert string) string {
	t.Helper()
	der, err := token.DecodeBinary(cert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subject.CommonName
}

// TestSeveralCardsChoice: with two usable cards the user picks one before
// the PIN prompt; the chosen card signs, the other's tries are untouched.
// This replaces "the first reader's card wins".
func TestSeveralCardsChoice(t *testing.T) {
	h := newHarness(t, nil)
	a, b := twoCards(t, h)
	triesA := a.PINTries()
	p := chooseIndex(1, markerPIN)
	tok, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p)
	if err != nil {
		t.Fatal(err)
	}
	verifyToken(t, tok, testOrigin, testChallenge)
	if cn := holderOfToken(t, tok.Certificate); !strings.Contains(cn, "SECOND") {
		t.Errorf("token certificate %q, want SECOND's", cn)
	}
	if a.Signatures() != 0 || b.Signatures() != 1 || a.PINTries() != triesA {
		t.Errorf("signatures %d/%d, first card's tries %d (were %d)", a.Signatures(), b.Signatures(), a.PINTries(), triesA)
	}
	cs := p.choiceList()
	if len(cs) != 1 || len(cs[0].Cards) != 2 {
		t.Fatalf("choices %+v, want one of two cards", cs)
	}
	c := cs[0]
	if c.Origin != testOrigin || c.Purpose != "sign in" || !strings.Contains(c.Cards[0].Holder, "FIRST") || !strings.Contains(c.Cards[1].Holder, "SECOND") ||
		c.Cards[0].Reader != "R0" || c.Cards[1].Reader != "R1" || c.Cards[1].TriesLeft != 3 || c.Cards[0].CardType == "" {
		t.Errorf("choice %+v", c)
	}
	reqs := p.requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].Holder, "SECOND") || reqs[0].Reader != "R1" {
		t.Errorf("PIN prompts %+v, want one for SECOND in R1", reqs)
	}
	h.checkLogs()
}

// TestSeveralCardsChoiceEnds: a cancelled, failed or impossible choice
// spends no try and shows no PIN prompt.
func TestSeveralCardsChoiceEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    prompt.Prompter
		code wire.Code
	}{
		{"cancelled", &choosingPrompter{fakePrompter: answerPIN(markerPIN), choose: func(context.Context, prompt.Choice) (int, error) { return -1, prompt.ErrCancelled }}, wire.CodeUserCancelled},
		{"timed out", &choosingPrompter{fakePrompter: answerPIN(markerPIN), choose: func(context.Context, prompt.Choice) (int, error) { return -1, prompt.ErrTimeout }}, wire.CodeTimeout},
		{"no prompt", &choosingPrompter{fakePrompter: answerPIN(markerPIN), choose: func(context.Context, prompt.Choice) (int, error) { return -1, prompt.ErrUnavailable }}, wire.CodePromptUnavailable},
		{"out of range", chooseIndex(2, markerPIN), wire.CodeInternalError},
		{"prompter cannot choose", answerPIN(markerPIN), wire.CodeCardAmbiguous},
		{"no prompter", nil, wire.CodePromptUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			a, b := twoCards(t, h)
			_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, tc.p)
			if codeOf(err) != tc.code {
				t.Fatalf("error %v, want %s", err, tc.code)
			}
			var pins int
			switch p := tc.p.(type) {
			case *choosingPrompter:
				pins = len(p.requests())
			case *fakePrompter:
				pins = len(p.requests())
			}
			if pins != 0 || a.PINTries() != 3 || b.PINTries() != 3 || a.Signatures()+b.Signatures() != 0 {
				t.Errorf("%d PIN prompts, tries %d/%d, signatures %d/%d", pins, a.PINTries(), b.PINTries(), a.Signatures(), b.Signatures())
			}
		})
	}
}

// TestChoiceClosedByRemoval: pulling a listed card closes the choice
// (card_removed); nothing is sent to the other card.
func TestChoiceClosedByRemoval(t *testing.T) {
	h := newHarness(t, nil)
	_, b := twoCards(t, h)
	shown := make(chan struct{})
	p := &choosingPrompter{fakePrompter: answerPIN(markerPIN), choose: func(ctx context.Context, _ prompt.Choice) (int, error) {
		close(shown)
		<-ctx.Done()
		return -1, prompt.ErrCancelled
	}}
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p)
		done <- err
	}()
	<-shown
	h.remove("R0")
	if err := <-done; codeOf(err) != wire.CodeCardRemoved {
		t.Fatalf("error %v, want card_removed", err)
	}
	if b.Signatures() != 0 || len(p.requests()) != 0 {
		t.Errorf("signatures %d, PIN prompts %d", b.Signatures(), len(p.requests()))
	}
}

// TestNamedCard: a page naming a card (status id) gets that card without a
// choice; an id not inserted is card_not_found with no prompt.
func TestNamedCard(t *testing.T) {
	h := newHarness(t, nil)
	a, b := twoCards(t, h)
	idB := hex.EncodeToString(b.GUID())
	st := h.waitState("R1", func(c *wire.CardState) bool { return c != nil && c.ID != "" })
	if st.ID != idB {
		t.Fatalf("status id %q, want the GUID %s", st.ID, idB)
	}
	p := chooseIndex(0, markerPIN) // would pick FIRST if asked
	tok, err := h.svc.AuthenticateCard(context.Background(), testOrigin, testChallenge, idB, p)
	if err != nil {
		t.Fatal(err)
	}
	if cn := holderOfToken(t, tok.Certificate); !strings.Contains(cn, "SECOND") {
		t.Errorf("token certificate %q, want SECOND's", cn)
	}
	if len(p.choiceList()) != 0 || len(p.requests()) != 1 || a.Signatures() != 0 {
		t.Errorf("choices %d, prompts %d, first card signatures %d", len(p.choiceList()), len(p.requests()), a.Signatures())
	}

	p = chooseIndex(0, markerPIN)
	if _, err := h.svc.AuthenticateCard(context.Background(), testOrigin, testChallenge, "00112233445566778899aabbccddeeff", p); codeOf(err) != wire.CodeCardNotFound {
		t.Fatalf("unknown id: %v, want card_not_found", err)
	}
	if len(p.choiceList()) != 0 || len(p.requests()) != 0 {
		t.Errorf("unknown id: %d choices, %d prompts", len(p.choiceList()), len(p.requests()))
	}

	// certificates: ambiguous without a card, the named card's with one.
	if _, err := h.svc.Certificates(context.Background(), ""); codeOf(err) != wire.CodeCardAmbiguous {
		t.Fatalf("certificates of two cards: %v, want card_ambiguous", err)
	}
	cc, err := h.svc.Certificates(context.Background(), idB)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Reader != "R1" || cc.CardID != idB || cc.Holder == nil || !strings.Contains(cc.Holder.Name, "SECOND") {
		t.Errorf("certificates %+v", cc)
	}
	if _, err := h.svc.Certificates(context.Background(), "nope"); codeOf(err) != wire.CodeCardNotFound {
		t.Errorf("certificates of an unknown id: %v", err)
	}
}

// TestBlockedCardNotOffered: a card whose PIN is blocked is not a choice:
// the other card is used without a choice prompt.
func TestBlockedCardNotOffered(t *testing.T) {
	h := newHarness(t, nil)
	a := newCard(t, testpki.CardSpec{Surname: "FIRST", DaysLeft: 400}, func(c *vpiv.Config) { c.PINTriesLeft = -1 })
	b := newCard(t, testpki.CardSpec{Surname: "SECOND", DaysLeft: 400, KeyIndex: 1}, nil)
	insertPIV(h, "R0", a)
	insertPIV(h, "R1", b)
	p := chooseIndex(0, markerPIN)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if len(p.choiceList()) != 0 || b.Signatures() != 1 {
		t.Errorf("choices %d, SECOND signatures %d", len(p.choiceList()), b.Signatures())
	}
}

// TestOneCardNoChoice: a single card needs no choice, and its PIN prompt
// names no reader (unchanged behaviour).
func TestOneCardNoChoice(t *testing.T) {
	h := newHarness(t, nil)
	insertPIV(h, "R0", newCard(t, testpki.CardSpec{DaysLeft: 400}, nil))
	h.insert("R1", unknownCard{}, []byte{0x3b, 0x00}, true) // an unsupported card beside it is no choice
	p := chooseIndex(0, markerPIN)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if len(p.choiceList()) != 0 || len(p.requests()) != 1 || p.requests()[0].Reader != "" {
		t.Errorf("choices %d, prompts %+v", len(p.choiceList()), p.requests())
	}
}

// TestSignDocumentsChoice: signing for a prescribing page asks which card
// too, and signs with the chosen card's signing key.
func TestSignDocumentsChoice(t *testing.T) {
	h := newHarness(t, nil)
	a, b := twoCards(t, h)
	p := chooseIndex(1, markerPIN)
	res, err := h.svc.SignDocuments(context.Background(), SignRequest{Origin: testOrigin, Hash: crypto.SHA256, Documents: [][]byte{[]byte("rx")}, Noun: "prescription"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Holder, "SECOND") || a.Signatures() != 0 || b.Signatures() != 1 {
		t.Errorf("holder %q, signatures %d/%d", res.Holder, a.Signatures(), b.Signatures())
	}
	if cs := p.choiceList(); len(cs) != 1 || cs[0].Purpose != "sign 1 prescription" {
		t.Errorf("choices %+v", cs)
	}
}

// TestChangePINChoice: with two cards, Change PIN asks which card first and
// changes the chosen card's PIN only; Unblock offers a blocked card too.
func TestChangePINChoice(t *testing.T) {
	h := newHarness(t, pinPolicy)
	a := newCard(t, testpki.CardSpec{Surname: "FIRST", DaysLeft: 400}, nil)
	b := newCard(t, testpki.CardSpec{Surname: "SECOND", DaysLeft: 400, KeyIndex: 1}, func(c *vpiv.Config) { c.PINTriesLeft = -1 })
	insertPIV(h, "R0", a)
	insertPIV(h, "R1", b)

	// Change PIN: the blocked card is no choice, so FIRST's PIN changes with no choice prompt.
	sp := scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPIN: {markerPIN}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	p := &choosingPrompter{fakePrompter: sp, choose: func(context.Context, prompt.Choice) (int, error) { return 0, nil }}
	if err := h.svc.ChangePIN(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if a.PIN() != newTestPIN || len(p.choiceList()) != 0 {
		t.Errorf("FIRST's PIN %q, %d choices", a.PIN(), len(p.choiceList()))
	}

	// Unblock: both cards are offered; the user picks SECOND (blocked).
	sp = scriptedSecrets(map[prompt.Secret][]string{
		prompt.SecretPUK: {vpiv.DefaultPUK}, prompt.SecretNewPIN: {newTestPIN}, prompt.SecretNewPINAgain: {newTestPIN},
	})
	p = &choosingPrompter{fakePrompter: sp, choose: func(context.Context, prompt.Choice) (int, error) { return 1, nil }}
	if err := h.svc.UnblockPIN(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	cs := p.choiceList()
	if len(cs) != 1 || cs[0].Purpose != "unblock your card" || cs[0].Origin != "" || len(cs[0].Cards) != 2 || cs[0].Cards[1].TriesLeft != 0 {
		t.Errorf("choices %+v", cs)
	}
	if b.PIN() != newTestPIN || b.PINTries() != 3 {
		t.Errorf("SECOND after unblock: PIN %q tries %d", b.PIN(), b.PINTries())
	}
	if h := prompt.ChoiceHeading(cs[0]); h != "Several smartcards are inserted: choose the one to unblock your card." {
		t.Errorf("heading %q", h)
	}
}

// TestOnePromptAtATime: while one page's card choice is open, another
// page's sign-in, even naming the other card, and a PIN change are refused
// with busy at once: the user never has two of the agent's prompts to tell
// apart, and nothing reaches either card.
func TestOnePromptAtATime(t *testing.T) {
	h := newHarness(t, nil)
	a, b := twoCards(t, h)
	idB := hex.EncodeToString(b.GUID())
	h.waitState("R1", func(c *wire.CardState) bool { return c != nil && c.ID != "" })
	open, release := make(chan struct{}), make(chan struct{})
	first := &choosingPrompter{fakePrompter: answerPIN(markerPIN), choose: func(ctx context.Context, _ prompt.Choice) (int, error) {
		close(open)
		select {
		case <-release:
			return 0, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}}
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, first)
		done <- err
	}()
	<-open
	second := chooseIndex(1, markerPIN)
	if _, err := h.svc.AuthenticateCard(context.Background(), "https://other.example", testChallenge, idB, second); codeOf(err) != wire.CodeBusy {
		t.Errorf("a named-card sign-in during another page's choice: %v, want busy", err)
	}
	if _, err := h.svc.Authenticate(context.Background(), "https://other.example", testChallenge, second); codeOf(err) != wire.CodeBusy {
		t.Errorf("a sign-in during another page's choice: %v, want busy", err)
	}
	if err := h.svc.ChangePIN(context.Background(), second); codeOf(err) != wire.CodeBusy {
		t.Errorf("a PIN change during a page's choice: %v, want busy", err)
	}
	if len(second.choiceList()) != 0 || len(second.requests()) != 0 {
		t.Errorf("the refused operations prompted: %d choices, %d PIN prompts", len(second.choiceList()), len(second.requests()))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first sign-in: %v", err)
	}
	if a.Signatures() != 1 || b.Signatures() != 0 {
		t.Errorf("signatures %d/%d, want 1/0", a.Signatures(), b.Signatures())
	}
	// Once it ended, the next one runs.
	if _, err := h.svc.AuthenticateCard(context.Background(), "https://other.example", testChallenge, idB, chooseIndex(1, markerPIN)); err != nil {
		t.Errorf("after the first ended: %v", err)
	}
}

// TestTooManyCardsToList: with more usable cards than a choice lists, the
// agent asks for none (no prompt, no try): the page names the card.
func TestTooManyCardsToList(t *testing.T) {
	h := newHarness(t, nil)
	for i := range prompt.MaxChoices + 1 {
		insertPIV(h, fmt.Sprintf("R%02d", i), newCard(t, testpki.CardSpec{DaysLeft: 400, KeyIndex: i % 2}, nil))
	}
	for i := range prompt.MaxChoices + 1 {
		h.waitState(fmt.Sprintf("R%02d", i), func(c *wire.CardState) bool { return c != nil && c.State == wire.CardReady })
	}
	p := chooseIndex(0, markerPIN)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); codeOf(err) != wire.CodeCardAmbiguous {
		t.Errorf("%d cards: %v, want card_ambiguous", prompt.MaxChoices+1, err)
	}
	if len(p.choiceList()) != 0 || len(p.requests()) != 0 {
		t.Errorf("%d choices, %d PIN prompts, want none", len(p.choiceList()), len(p.requests()))
	}
}
