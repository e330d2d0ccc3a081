package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = cli.Main(ctx, args, &cli.Env{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

// waitCards runs `cards --json` until every reader in want has a card, as
// vpcd needs up to a few hundred ms to report an inserted card.
func waitCards(t *testing.T, n int) agent.Inventory {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, errOut, code := run(t, "cards", "--json")
		var inv agent.Inventory
		if code == cli.ExitOK {
			if err := json.Unmarshal([]byte(out), &inv); err != nil {
				t.Fatalf("cards --json is not JSON: %v\n%s", err, out)
			}
			got := 0
			for _, r := range inv.Readers {
				if r.Card != nil {
					got++
				}
			}
			if got == n {
				return inv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cards --json: exit %d, want %d cards\nstdout: %s\nstderr: %s", code, n, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCardsJSON inserts a virtual PIV card (series 9/10) and a virtual series
// 8 card into the two vpcd readers of a private pcscd, and checks what
// `cardagent cards --json` reports for each, then the table output.
func TestCardsJSON(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	pivCard, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", DaysLeft: 60})
	if err != nil {
		t.Fatal(err)
	}
	s8Card, err := vseries8.NewNHS(pki, testpki.CardSpec{UUID: "123456789012", Surname: "SMITH", Forename: "MARY", DaysLeft: 400, KeyIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 0, pivCard, vcard.Options{})
	p.Insert(t, 1, s8Card, vcard.Options{})

	inv := waitCards(t, 2)
	if inv.Schema != agent.InventorySchema || len(inv.Readers) != 2 {
		t.Fatalf("schema %d, %d readers", inv.Schema, len(inv.Readers))
	}
	tests := []struct {
		reader, kind, driver, uuid, name string
		days                             int
	}{
		{pcsctest.ReaderNames[0], "piv", "piv", "555253521108", "Userq RANDOM", 60},
		{pcsctest.ReaderNames[1], "series8", "series8", "123456789012", "Mary SMITH", 400},
	}
	for i, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			r := inv.Readers[i]
			c := r.Card
			if r.Name != tt.reader || c == nil {
				t.Fatalf("reader %d = %q card %v, want %q with a card", i, r.Name, c, tt.reader)
			}
			if c.Kind != tt.kind || c.Driver != tt.driver || !c.Supported || c.Error != "" {
				t.Errorf("kind %q driver %q supported %v error %q", c.Kind, c.Driver, c.Supported, c.Error)
			}
			if c.ID == "" || c.IDSource == "" || c.ATR == "" {
				t.Errorf("identity %q from %q, ATR %q", c.ID, c.IDSource, c.ATR)
			}
			if c.Holder == nil || c.Holder.UUID != tt.uuid || c.Holder.Name != tt.name {
				t.Errorf("holder %+v, want UUID %s name %q", c.Holder, tt.uuid, tt.name)
			}
			if c.PIN == nil || c.PIN.TriesLeft != 3 || c.PIN.Blocked {
				t.Errorf("PIN %+v, want 3 tries left", c.PIN)
			}
			keys := map[string]bool{}
			for _, s := range c.Certificates {
				keys[s.Key] = true
				if s.DaysLeft != tt.days-1 && s.DaysLeft != tt.days {
					t.Errorf("cert %s: %d days left, want %d", s.Key, s.DaysLeft, tt.days)
				}
				if s.KeyType != "RSA-2048" || !strings.Contains(s.Issuer, "NHS TEST") {
					t.Errorf("cert %s: key %s issuer %s", s.Key, s.KeyType, s.Issuer)
				}
			}
			if !keys["9a"] || !keys["9c"] || len(c.Certificates) != 2 {
				t.Errorf("certificates %v, want 9a and 9c", keys)
			}
		})
	}
	// Reading the inventory spends no PIN try and writes nothing.
	if pivCard.PINTries() != 3 || pivCard.WriteCount() != 0 || s8Card.PINTries() != 3 || s8Card.WriteCount() != 0 {
		t.Errorf("after cards: PIV tries %d writes %d, series 8 tries %d writes %d",
			pivCard.PINTries(), pivCard.WriteCount(), s8Card.PINTries(), s8Card.WriteCount())
	}

	out, _, code := run(t, "cards")
	for _, want := range []string{"Reader Virtual PCD 00 00", "NHS series 9/10", "Userq RANDOM (user ID 555253521108)", "3 tries left", "authentication", "RSA-2048"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
	if code != cli.ExitOK {
		t.Errorf("cards exit %d", code)
	}
}

// TestCardsTrace checks that --trace-apdu writes a trace with the series 8
// probe, and that it holds no VERIFY with data (no PIN is ever sent).
func TestCardsTrace(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	s8Card, err := vseries8.NewNHS(pki, testpki.CardSpec{KeyIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.Insert(t, 1, s8Card, vcard.Options{})
	waitCards(t, 1)
	_, trace, code := run(t, "cards", "--trace-apdu")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, trace)
	}
	for _, want := range []string{"series 8 probe", "> 80 CA 9F 7F", "> 00 20 00 81"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	if strings.Contains(trace, "00 20 00 81 40 31") {
		t.Errorf("trace holds a PIN VERIFY:\n%s", trace)
	}
	if s8Card.PINTries() != 3 || s8Card.WriteCount() != 0 {
		t.Errorf("trace spent a try (%d left) or wrote (%d)", s8Card.PINTries(), s8Card.WriteCount())
	}
}

// TestNoService: with pcscd stopped, `cards` says so and exits 3; it must run
// last in this file's order as it restarts the shared pcscd.
func TestNoService(t *testing.T) {
	p := pcsctest.Require(t)
	p.Kill()
	defer func() {
		if err := p.Restart(); err != nil {
			t.Fatal(err)
		}
	}()
	_, errOut, code := run(t, "cards")
	if code != cli.ExitNoService || !strings.Contains(errOut, "no smart-card service running") {
		t.Errorf("exit %d, stderr %q; want %d and the message", code, errOut, cli.ExitNoService)
	}
}
