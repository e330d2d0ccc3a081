package cli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// hostileSurname and hostileForename hold what a hostile card's certificate
// may name: an ANSI clear-screen and colour, a right-to-left override, a
// carriage return and a newline that would forge a table line.
const (
	hostileSurname  = "EVIL\x1b[2J\x1b[31m"
	hostileForename = "MALLORY\u202eTXT.EXE\r\n  PIN\t3 tries left"
)

// terminalSafe reports the first character of out that a terminal would
// act on (anything below U+0020 but the newline ending a line, DEL, C1
// controls, bidirectional controls).
func terminalSafe(out string) (rune, bool) {
	for _, r := range out {
		switch {
		case r == '\n':
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return r, false
		}
	}
	return 0, true
}

// TestHostileCardText inserts a card whose holder name carries terminal
// escapes, a bidirectional override and line breaks: `cards` and `doctor`
// print it cleaned, on one line; `cards --json` keeps it exact.
func TestHostileCardText(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521109", Surname: hostileSurname, Forename: hostileForename, DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 0, card, vcard.Options{})
	inv := waitCards(t, 1)
	var exact string
	for _, r := range inv.Readers {
		if r.Card != nil && r.Card.Holder != nil {
			exact = r.Card.Holder.Name
		}
	}
	if !strings.Contains(exact, "\x1b[2J") || !strings.Contains(exact, "\u202e") || !strings.Contains(exact, "\n") {
		t.Fatalf("cards --json holder %q: the hostile name is not kept exact", exact)
	}
	raw, _, _ := run(t, "cards", "--json")
	var again agent.Inventory
	if err := json.Unmarshal([]byte(raw), &again); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := run(t, "cards")
	if code != cli.ExitOK {
		t.Fatalf("cards: exit %d: %s", code, errOut)
	}
	if r, ok := terminalSafe(out); !ok {
		t.Errorf("cards printed %U raw:\n%q", r, out)
	}
	// (The test PKI writes names in capitals.) The whole name is on the
	// Holder line (and the certificate lines), and no line carries a part
	// of it alone.
	const cleaned = "EVIL [2J [31M_MALLORYTXT.EXE PIN 3 TRIES LEFT"
	holder := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Holder") {
			holder = line
		}
		if (strings.Contains(line, "MALLORY") || strings.Contains(line, "TRIES LEFT")) && !strings.Contains(line, cleaned) {
			t.Errorf("a part of the name on a line of its own: %q", line)
		}
	}
	if !strings.Contains(holder, cleaned) {
		t.Errorf("holder line %q does not show the cleaned name", holder)
	}

	// doctor probes the agent's ports and the Credential Management ports:
	// private ones, never those a developer's own agent listens on.
	ports := pcsctest.FreePorts(t, 2)
	file := configFile(t, fmt.Sprintf(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}, "listen": {"port": %d, "port_range": 1}, "credential_management": {"ports": [%d]}}`, ports[0], ports[1]))
	out, _, _ = run(t, "doctor", "--config", file)
	if !strings.Contains(out, "MALLORY") {
		t.Fatalf("doctor does not name the holder:\n%s", out)
	}
	if r, ok := terminalSafe(out); !ok {
		t.Errorf("doctor printed %U raw:\n%q", r, out)
	}
}
