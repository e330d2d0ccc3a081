package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// secondHolder is the second card's holder in the card choice tests (the
// first is e2eCard's, Userq RANDOM).
const secondHolder = "SECOND"

// insertTwoCards puts e2eCard's card (holder RANDOM) in the first vpcd
// reader and a card of another holder, with another key, in the second,
// and waits until the agent has read both.
func insertTwoCards(t *testing.T, p *pcsctest.PCSCD, a *agentUnderTest) (first, second *vpiv.Card, pki *testpki.PKI) {
	t.Helper()
	first, pki = e2eCard(t)
	second, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521109", Surname: secondHolder, Forename: "HOLDER", DaysLeft: 400, KeyIndex: 1},
		func(c *vpiv.Config) { c.PIN = markerPIN })
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 0, first, vcard.Options{})
	p.Insert(t, 1, second, vcard.Options{})
	deadline := time.Now().Add(15 * time.Second)
	for {
		ready := 0
		for _, r := range a.svc.Status().Readers {
			if r.Card != nil && r.Card.State == wire.CardReady {
				ready++
			}
		}
		if ready == 2 {
			return first, second, pki
		}
		if time.Now().After(deadline) {
			t.Fatalf("two ready cards never seen: %+v", a.svc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cardIDs returns the status ids of the cards in the two readers.
func cardIDs(t *testing.T, a *agentUnderTest) [2]string {
	t.Helper()
	var ids [2]string
	for _, r := range a.svc.Status().Readers {
		for i, name := range pcsctest.ReaderNames {
			if r.Name == name && r.Card != nil {
				ids[i] = r.Card.ID
			}
		}
	}
	if ids[0] == "" || ids[1] == "" || ids[0] == ids[1] {
		t.Fatalf("card ids %q", ids)
	}
	return ids
}

// tokenSubject is the subject CN of the certificate in an authenticate reply's token.
func tokenSubject(t *testing.T, m msg) string {
	t.Helper()
	der, err := token.DecodeBinary(tokenOf(t, m).Certificate)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subject.CommonName
}

// buildScripted builds the scripted pinentry into a temporary directory.
func buildScripted(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the scripted pinentry")
	}
	bin := filepath.Join(t.TempDir(), "scripted")
	build := exec.Command("go", "build", "-o", bin, "./testdata/pinentry/scripted")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the scripted pinentry: %v\n%s", err, out)
	}
	return bin
}

// scriptedRecord is what the scripted pinentry recorded for one prompt.
type scriptedRecord struct {
	Desc     string   `json:"desc"`
	Cancel   string   `json:"cancel"`
	Commands []string `json:"commands"`
}

func readRecords(t *testing.T, path string) []scriptedRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []scriptedRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r scriptedRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestEndToEndChoicePinentry: two cards of different holders in the two
// vpcd readers, the scripted pinentry as the prompt. Pinentry has no list:
// one CONFIRM per card ("Next card" on the first, "Use this card" on the
// second), then the PIN prompt for the card chosen. The token's certificate
// is the second holder's; the first card's tries are untouched. Cancelling
// on the last card is user_cancelled with no try spent.
func TestEndToEndChoicePinentry(t *testing.T) {
	p := pcsctest.Require(t)
	bin := buildScripted(t)
	sw := &prompttest.Switch{}
	a := startAgent(t, sw, Options{})
	first, second, pki := insertTwoCards(t, p, a)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)
	dir := t.TempDir()

	t.Run("second card", func(t *testing.T) {
		queue, record := filepath.Join(dir, "queue1"), filepath.Join(dir, "record1")
		if err := os.WriteFile(queue, []byte("cancel\nok\npin "+markerPIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sw.Set(&prompt.Pinentry{Path: bin, Args: []string{"-queue", queue, "-record", record}})
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		m := c.authenticate(t, "p1", ch)
		if errCode(m) != "" {
			t.Fatalf("reply %v", m)
		}
		if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
			t.Fatalf("token does not verify: %v", err)
		}
		if cn := tokenSubject(t, m); !strings.Contains(cn, secondHolder) {
			t.Errorf("token certificate %q, want the second holder's", cn)
		}
		if first.PINTries() != 3 || first.Signatures() != 0 || second.Signatures() != 1 {
			t.Errorf("first card tries %d signatures %d, second signatures %d", first.PINTries(), first.Signatures(), second.Signatures())
		}
		recs := readRecords(t, record)
		if len(recs) != 3 {
			t.Fatalf("%d prompts, want 2 choices and 1 PIN prompt: %+v", len(recs), recs)
		}
		if !strings.Contains(recs[0].Desc, goodOrigin+" asks for a smartcard to sign in") ||
			!strings.Contains(recs[0].Desc, "Card 1 of 2: Userq RANDOM, NHS series 9/10 (PIV), in "+pcsctest.ReaderNames[0]+", 3 PIN tries left") ||
			recs[0].Cancel != "Next card" || last(recs[0].Commands) != "CONFIRM" {
			t.Errorf("first choice prompt: %+v", recs[0])
		}
		if !strings.Contains(recs[1].Desc, "Card 2 of 2: Holder SECOND, NHS series 9/10 (PIV), in "+pcsctest.ReaderNames[1]) ||
			recs[1].Cancel != "Cancel" || last(recs[1].Commands) != "CONFIRM" {
			t.Errorf("second choice prompt: %+v", recs[1])
		}
		if !strings.Contains(recs[2].Desc, "Card holder: Holder SECOND") || !strings.Contains(recs[2].Desc, "Reader: "+pcsctest.ReaderNames[1]) ||
			last(recs[2].Commands) != "GETPIN" {
			t.Errorf("PIN prompt: %+v", recs[2])
		}
	})

	t.Run("cancel on the last card", func(t *testing.T) {
		queue, record := filepath.Join(dir, "queue2"), filepath.Join(dir, "record2")
		if err := os.WriteFile(queue, []byte("cancel\ncancel\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sw.Set(&prompt.Pinentry{Path: bin, Args: []string{"-queue", queue, "-record", record, "-pin", markerPIN}})
		m := c.authenticate(t, "p2", testChallenge)
		if errCode(m) != string(wire.CodeUserCancelled) {
			t.Fatalf("reply %v, want user_cancelled", m)
		}
		if recs := readRecords(t, record); len(recs) != 2 {
			t.Errorf("%d prompts, want the 2 choices only", len(recs))
		}
		if first.PINTries() != 3 || second.PINTries() != 3 || first.Signatures() != 0 || second.Signatures() != 1 {
			t.Errorf("tries %d/%d, signatures %d/%d", first.PINTries(), second.PINTries(), first.Signatures(), second.Signatures())
		}
	})
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestEndToEndNamedCard: a page naming a card by its status id gets that
// card with no choice prompt (the prompter here cannot even offer one); an
// id not inserted is card_not_found with no prompt; certificates with two
// cards and no card field is card_ambiguous, and names the card it read.
func TestEndToEndNamedCard(t *testing.T) {
	p := pcsctest.Require(t)
	var prompts atomic.Int32
	a := startAgent(t, prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) {
		prompts.Add(1)
		return []byte(markerPIN), nil
	}), Options{})
	first, second, pki := insertTwoCards(t, p, a)
	ids := cardIDs(t, a)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)

	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, map[string]any{"id": 1, "type": "authenticate", "challenge": ch, "card": ids[1]})
	m := c.reply(t, 1)
	if errCode(m) != "" {
		t.Fatalf("named card: %v", m)
	}
	if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
		t.Fatal(err)
	}
	if cn := tokenSubject(t, m); !strings.Contains(cn, secondHolder) || prompts.Load() != 1 || first.Signatures() != 0 || second.Signatures() != 1 {
		t.Errorf("token of %q, %d prompts, signatures %d/%d", cn, prompts.Load(), first.Signatures(), second.Signatures())
	}

	c.send(t, map[string]any{"id": 2, "type": "authenticate", "challenge": testChallenge, "card": "00112233445566778899aabbccddeeff"})
	if m := c.reply(t, 2); errCode(m) != string(wire.CodeCardNotFound) || prompts.Load() != 1 {
		t.Errorf("unknown card: %v, %d prompts", m, prompts.Load())
	}
	// No card named, two usable, a prompter that cannot offer a choice.
	if m := c.authenticate(t, 3, testChallenge); errCode(m) != string(wire.CodeCardAmbiguous) || prompts.Load() != 1 {
		t.Errorf("ambiguous: %v, %d prompts", m, prompts.Load())
	}
	c.send(t, map[string]any{"id": 4, "type": "certificates"})
	if m := c.reply(t, 4); errCode(m) != string(wire.CodeCardAmbiguous) {
		t.Errorf("certificates of two cards: %v", m)
	}
	c.send(t, map[string]any{"id": 5, "type": "certificates", "card": ids[0]})
	m = c.reply(t, 5)
	cc := decode[struct {
		CardID string `json:"card_id"`
		Reader string `json:"reader"`
		Holder struct {
			Name string `json:"name"`
		} `json:"holder"`
	}](t, m)
	if cc.CardID != ids[0] || cc.Reader != pcsctest.ReaderNames[0] || !strings.Contains(cc.Holder.Name, "RANDOM") {
		t.Errorf("certificates of the first card (id %s): %v", ids[0], m)
	}
	for i, bad := range []any{42, "", strings.Repeat("a", 129), "a\nb"} {
		c.send(t, map[string]any{"id": 10 + i, "type": "authenticate", "challenge": testChallenge, "card": bad})
		if m := c.reply(t, 10+i); errCode(m) != string(wire.CodeBadRequest) {
			t.Errorf("card %q: %v", bad, m)
		}
	}
	// The Web eID mode takes the card field too.
	nonce := strings.Repeat("A", 44)
	c.send(t, map[string]any{"id": 20, "type": "authenticate", "format": token.WebEIDFormat, "challenge": nonce, "card": ids[0]})
	if m := c.reply(t, 20); errCode(m) != "" || first.Signatures() != 1 {
		t.Errorf("web-eid with a card: %v, first card signatures %d", m, first.Signatures())
	}
	if first.PINTries() != 3 || second.PINTries() != 3 {
		t.Errorf("tries %d/%d", first.PINTries(), second.PINTries())
	}
}
