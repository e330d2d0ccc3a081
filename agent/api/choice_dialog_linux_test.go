package api

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// TestEndToEndChoiceDialog: two cards of different holders in the two vpcd
// readers, the real desktop dialog (zenity) on a private Xvfb display,
// driven with xdotool as a user would. The choice dialog lists both
// holders (screenshot: set CARDAGENT_TEST_SCREENSHOTS to a directory to
// keep it); choosing the second card and typing its PIN in the PIN dialog
// that follows signs in with the second card's key: the token's
// certificate is the second holder's, and the first card's PIN tries are
// untouched. Cancelling the choice is user_cancelled with no try spent.
func TestEndToEndChoiceDialog(t *testing.T) {
	p := pcsctest.Require(t)
	desk := prompttest.StartDesktop(t)
	dialog := &prompt.Dialog{Program: "zenity", Timeout: 60 * time.Second}
	a := startAgent(t, dialog, Options{})
	first, second, pki := insertTwoCards(t, p, a)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)
	shots := t.TempDir()

	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, map[string]any{"id": "d1", "type": "authenticate", "challenge": ch})

	desk.WaitWindow(t, "cardagent: choose a card")
	desk.Screenshot(t, filepath.Join(shots, "choice-dialog.png"))
	desk.XDoTool(t, "key", "Down") // from the first row to the second
	time.Sleep(300 * time.Millisecond)
	desk.Screenshot(t, filepath.Join(shots, "choice-dialog-second.png"))
	desk.XDoTool(t, "key", "Return")

	desk.WaitWindow(t, "cardagent: PIN")
	desk.Screenshot(t, filepath.Join(shots, "pin-dialog-second-card.png"))
	desk.XDoTool(t, "type", "--delay", "30", markerPIN)
	desk.XDoTool(t, "key", "Return")

	m := c.reply(t, "d1")
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

	c.send(t, map[string]any{"id": "d2", "type": "authenticate", "challenge": testChallenge})
	desk.WaitWindow(t, "cardagent: choose a card")
	desk.XDoTool(t, "key", "Escape")
	if m := c.reply(t, "d2"); errCode(m) != "user_cancelled" {
		t.Errorf("cancelled choice: %v", m)
	}
	if first.PINTries() != 3 || second.PINTries() != 3 {
		t.Errorf("tries %d/%d after a cancelled choice", first.PINTries(), second.PINTries())
	}
	prompttest.CopyScreenshots(t, shots, "choice-dialog.png", "choice-dialog-second.png", "pin-dialog-second-card.png")
	t.Logf("screenshots in %s", shots)
}
