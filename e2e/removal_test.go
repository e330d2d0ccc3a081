package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// TestBrowserSessionEnded: with the removal policy "notify", pulling the
// card that signed in on the demo page (from the vpcd reader, through the
// real pcscd) makes the agent push session_ended after the grace period,
// and the demo page signs out.
func TestBrowserSessionEnded(t *testing.T) {
	const grace = 300 * time.Millisecond
	e := setupWith(t, func(s *agent.CardService) { s.Removal, s.RemovalGrace = agent.RemovalNotify, grace })
	slot := e.pcscd.Insert(t, 0, e.card, vcard.Options{})
	e.waitCardReady(t)
	e.usePinentry(t, "pin", markerPIN)
	r := e.signIn(t, e.allowedURL, nil)
	if r.State != "signed-in" || r.UUID != e.holder.UUID {
		t.Fatalf("page state %q as %q (code %q: %q), want signed-in as %q", r.State, r.UUID, r.Code, r.Message, e.holder.UUID)
	}
	removed := time.Now()
	if err := slot.Remove(); err != nil {
		t.Fatal(err)
	}
	e.waitPage(t, r.tab, `body[data-state="ready"] #message[data-code="session_ended"]`)
	took := time.Since(removed)
	var resultHidden bool
	if err := chromedp.Run(r.tab, chromedp.Evaluate(`document.getElementById("result").hidden`, &resultHidden)); err != nil {
		t.Fatal(err)
	}
	if !resultHidden {
		t.Error("the signed-in panel is still shown after session_ended")
	}
	if took < grace {
		t.Errorf("signed out %v after the card was pulled, before the grace period (%v)", took, grace)
	}
	t.Logf("page signed out %v after the card was pulled (grace %v)", took.Round(time.Millisecond), grace)
}
