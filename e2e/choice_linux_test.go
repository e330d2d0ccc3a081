package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// TestBrowserCardChoice: two cards of different holders in the two vpcd
// readers and a sign-in from the demo page in headless Chromium. The agent
// asks which card: through the real desktop dialog (zenity on a private
// Xvfb, driven with xdotool; screenshots taken) and through pinentry (one
// confirmation per card). Choosing the second card signs in its holder:
// the page shows the second holder and the second card (reader and id),
// and the first card's PIN tries are untouched.
func TestBrowserCardChoice(t *testing.T) {
	e := setup(t)
	creds, err := e.pki.IssueCard(testpki.CardSpec{Surname: "Second", Forename: "Clinician", DaysLeft: 365, KeyIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vpiv.NHSConfig(creds)
	cfg.PIN = markerPIN
	second, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	secondHolder := certinfo.HolderOf(creds.AuthCert)
	e.pcscd.Insert(t, 0, e.card, vcard.Options{})
	e.pcscd.Insert(t, 1, second, vcard.Options{})
	waitReady(t, e, 2)
	secondID := ""
	for _, r := range e.svc.Status().Readers {
		if r.Name == pcsctest.ReaderNames[1] && r.Card != nil {
			secondID = r.Card.ID
		}
	}
	if secondID == "" {
		t.Fatalf("no id for the second card: %+v", e.svc.Status())
	}

	check := func(t *testing.T, r pageResult) {
		t.Helper()
		if r.State != "signed-in" {
			t.Fatalf("page state %q (code %q: %q), want signed-in", r.State, r.Code, r.Message)
		}
		if r.Holder != secondHolder.Name {
			t.Errorf("page shows holder %q, want the second card's %q", r.Holder, secondHolder.Name)
		}
		var card struct {
			ID, Reader, Text string
		}
		err := chromedp.Run(r.tab, chromedp.Evaluate(`(() => { const c = document.getElementById("signed-card");
			return {ID: c.dataset.cardId, Reader: c.dataset.reader, Text: c.textContent}; })()`, &card))
		if err != nil {
			t.Fatal(err)
		}
		if card.ID != secondID || card.Reader != pcsctest.ReaderNames[1] || !strings.Contains(card.Text, pcsctest.ReaderNames[1]) {
			t.Errorf("page shows the card %+v, want id %s in %s", card, secondID, pcsctest.ReaderNames[1])
		}
		if e.card.PINTries() != 3 || e.card.Signatures() != 0 {
			t.Errorf("first card: tries %d, signatures %d; want untouched", e.card.PINTries(), e.card.Signatures())
		}
	}

	t.Run("pinentry", func(t *testing.T) {
		dir := t.TempDir()
		queue, rec := filepath.Join(dir, "queue"), filepath.Join(dir, "prompts.jsonl")
		if err := os.WriteFile(queue, []byte("cancel\nok\npin "+markerPIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.prompter.Set(&prompt.Pinentry{Path: e.pinentry, Args: []string{"-queue", queue, "-record", rec}, Timeout: 20 * time.Second})
		sigs := second.Signatures()
		check(t, e.signIn(t, e.allowedURL, nil))
		if second.Signatures() != sigs+1 {
			t.Errorf("second card signatures %d, want %d", second.Signatures(), sigs+1)
		}
		recs := readRecords(t, rec)
		if len(recs) != 3 || !strings.Contains(recs[0].Desc, e.holder.Name) || !strings.Contains(recs[1].Desc, secondHolder.Name) ||
			!strings.Contains(recs[2].Desc, "Card holder: "+secondHolder.Name) {
			t.Errorf("prompts %+v, want a choice per card then the second card's PIN prompt", recs)
		}
	})

	t.Run("dialog", func(t *testing.T) {
		desk := prompttest.StartDesktop(t)
		e.prompter.Set(&prompt.Dialog{Program: "zenity", Timeout: 20 * time.Second})
		shots := t.TempDir()
		sigs := second.Signatures()
		r := e.signIn(t, e.allowedURL, func(context.Context) {
			desk.WaitWindow(t, "cardagent: choose a card")
			desk.Screenshot(t, filepath.Join(shots, "browser-choice-dialog.png"))
			desk.XDoTool(t, "key", "Down")
			desk.XDoTool(t, "key", "Return")
			desk.WaitWindow(t, "cardagent: PIN")
			desk.XDoTool(t, "type", "--delay", "30", markerPIN)
			desk.XDoTool(t, "key", "Return")
		})
		check(t, r)
		if second.Signatures() != sigs+1 {
			t.Errorf("second card signatures %d, want %d", second.Signatures(), sigs+1)
		}
		prompttest.CopyScreenshots(t, shots, "browser-choice-dialog.png")
	})
}

// waitReady waits until the agent has read n ready cards.
func waitReady(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ready := 0
		for _, r := range e.svc.Status().Readers {
			if r.Card != nil && r.Card.State == wire.CardReady {
				ready++
			}
		}
		if ready == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent did not read %d cards: %+v", n, e.svc.Status())
}
