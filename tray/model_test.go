package tray

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/tray/trayproto"
)

var testPKI = sync.OnceValues(testpki.New)

// testNow is the clock of the model tests.
var testNow = time.Date(2025, 11, 21, 10, 0, 0, 0, time.UTC)

// readyCard is a ready NHS card whose certificates have daysLeft days left.
func readyCard(t testing.TB, daysLeft int) *wire.CardState {
	t.Helper()
	p, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := p.IssueCard(testpki.CardSpec{Surname: "SMITH", Forename: "MARY", DaysLeft: daysLeft, KeyType: testpki.P256, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	h := certinfo.HolderOf(creds.AuthCert)
	cs := &wire.CardState{State: wire.CardReady, Kind: "piv", Type: "NHS series 9/10 (PIV)", Holder: &h,
		PIN: &wire.PINReport{TriesLeft: 3}}
	auth := certinfo.Summarise("9a", creds.AuthCert, testNow)
	sign := certinfo.Summarise("9c", creds.SignCert, testNow)
	cs.Certificates = []wire.CertificateStatus{
		{Summary: auth, Expiry: expiry.Policy{WarnDays: 90}.State(auth)},
		{Summary: sign, Expiry: expiry.Policy{WarnDays: 90}.State(sign)},
	}
	return cs
}

func withReaders(cards ...*wire.CardState) wire.Status {
	st := wire.Status{Service: wire.ServiceUp, ExpiryWarningDays: 90}
	for i, c := range cards {
		st.Readers = append(st.Readers, wire.ReaderStatus{Name: fmt.Sprintf("Virtual PCD 00 %02d", i), Card: c})
	}
	return st
}

func TestBuild(t *testing.T) {
	renewal := trayproto.AgentInfo{Version: "1.0", RenewalURL: "https://renew.example.nhs.uk", APIPort: 43800}
	blocked := readyCard(t, 400)
	blocked.PIN = &wire.PINReport{TriesLeft: 0, Blocked: true}
	lastTry := readyCard(t, 400)
	lastTry.PIN = &wire.PINReport{TriesLeft: 1}
	unsupported := &wire.CardState{State: wire.CardUnsupported, Kind: "retired", Type: "NHS series 4-6", Hint: "This card is no longer supported: ask for a new card."}
	reading := &wire.CardState{State: wire.CardReading, Kind: "unknown"}

	for _, tc := range []struct {
		name        string
		in          Input
		state       State
		tooltip     []string // substrings
		notice      bool
		changePIN   string // "hidden", "disabled", "enabled"
		renew       bool
		certLines   []string
		quitVisible bool
	}{
		{name: "agent unreachable", in: Input{}, state: StateAgentProblem,
			tooltip: []string{"cardagent: Smartcard sign-in unavailable", "cannot be reached"}, changePIN: "hidden", quitVisible: true},
		{name: "port in use", in: Input{Connected: true, Status: withReaders(readyCard(t, 400)), Agent: trayproto.AgentInfo{APIError: "every port from 43800 to 43809 is in use"}},
			state: StateAgentProblem, tooltip: []string{"43800 to 43809 is in use"}, changePIN: "hidden", quitVisible: true},
		{name: "no smart-card service", in: Input{Connected: true, Status: wire.Status{Service: wire.ServiceDown}},
			state: StateAgentProblem, tooltip: []string{"smart-card service is not running"}, changePIN: "hidden", quitVisible: true},
		{name: "no reader", in: Input{Connected: true, Status: withReaders()},
			state: StateNoReader, tooltip: []string{"No smart-card reader"}, changePIN: "hidden", quitVisible: true},
		{name: "no card", in: Input{Connected: true, Status: withReaders(nil, nil)},
			state: StateNoCard, tooltip: []string{"No smartcard inserted"}, changePIN: "hidden", quitVisible: true},
		{name: "reading", in: Input{Connected: true, Status: withReaders(reading)},
			state: StateNoCard, tooltip: []string{"Reading"}, changePIN: "hidden", quitVisible: true},
		{name: "ready, 400 days", in: Input{Connected: true, Status: withReaders(readyCard(t, 400)), Agent: renewal},
			state: StateReady, tooltip: []string{"Smartcard ready (Mary SMITH)"}, changePIN: "enabled", renew: true,
			certLines: []string{"Authentication certificate: expires in 400 days", "Signature certificate: expires in 400 days"}, quitVisible: true},
		{name: "ready, no renewal page", in: Input{Connected: true, Status: withReaders(readyCard(t, 400))},
			state: StateReady, tooltip: []string{"ready"}, changePIN: "enabled", renew: false, quitVisible: true},
		{name: "60 days", in: Input{Connected: true, Status: withReaders(readyCard(t, 60)), Agent: renewal},
			state: StateAttention, tooltip: []string{"Certificate expires in 60 days", "renew it now"}, notice: true, changePIN: "enabled", renew: true,
			certLines: []string{"Authentication certificate: expires in 60 days"}, quitVisible: true},
		{name: "10 days", in: Input{Connected: true, Status: withReaders(readyCard(t, 10)), Agent: renewal},
			state: StateAttention, tooltip: []string{"expires in 10 days"}, notice: true, changePIN: "enabled", renew: true, quitVisible: true},
		{name: "expired", in: Input{Connected: true, Status: withReaders(readyCard(t, -1)), Agent: renewal},
			state: StateBlocked, tooltip: []string{"Certificate expired", "Registration Authority"}, notice: true, changePIN: "enabled", renew: true,
			certLines: []string{"Authentication certificate: expired"}, quitVisible: true},
		{name: "PIN blocked", in: Input{Connected: true, Status: withReaders(blocked), Agent: renewal},
			state: StateBlocked, tooltip: []string{"Card blocked", "PUK"}, changePIN: "disabled", renew: true, quitVisible: true},
		{name: "last PIN try", in: Input{Connected: true, Status: withReaders(lastTry)},
			state: StateAttention, tooltip: []string{"Last PIN try"}, changePIN: "enabled", quitVisible: true},
		{name: "unsupported card", in: Input{Connected: true, Status: withReaders(unsupported)},
			state: StateBlocked, tooltip: []string{"This card cannot be used", "no longer supported"}, changePIN: "hidden", quitVisible: true},
		{name: "ready card in the second reader wins", in: Input{Connected: true, Status: withReaders(unsupported, readyCard(t, 400))},
			state: StateReady, tooltip: []string{"ready"}, changePIN: "enabled", quitVisible: true},
		{name: "quit hidden by policy", in: Input{Connected: true, Status: withReaders(), Agent: trayproto.AgentInfo{HideQuit: true}},
			state: StateNoReader, changePIN: "hidden", quitVisible: false},
		{name: "warning window from the agent's status", in: Input{Connected: true, Status: func() wire.Status {
			s := withReaders(readyCard(t, 60))
			s.ExpiryWarningDays = 30
			return s
		}()}, state: StateReady, changePIN: "enabled", quitVisible: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Build(tc.in)
			if v.State != tc.state {
				t.Errorf("state %q, want %q (tooltip %q)", v.State, tc.state, v.Tooltip)
			}
			if !strings.HasPrefix(v.Tooltip, "cardagent: ") || len(v.Tooltip) > maxTooltip {
				t.Errorf("tooltip %q", v.Tooltip)
			}
			for _, want := range tc.tooltip {
				if !strings.Contains(v.Tooltip, want) {
					t.Errorf("tooltip %q lacks %q", v.Tooltip, want)
				}
			}
			if v.Menu.Status == "" || !strings.HasSuffix(v.Tooltip, v.Menu.Status) && len(v.Tooltip) < maxTooltip {
				t.Errorf("menu status %q does not match the tooltip %q", v.Menu.Status, v.Tooltip)
			}
			gotNotice := v.Card != nil && v.Card.Notice != ""
			if gotNotice != tc.notice {
				t.Errorf("notice %v, want %v (%+v)", gotNotice, tc.notice, v.Card)
			}
			var cp string
			switch m := v.Menu.ChangePIN; {
			case !m.Visible:
				cp = "hidden"
			case !m.Enabled:
				cp = "disabled"
			default:
				cp = "enabled"
			}
			if cp != tc.changePIN {
				t.Errorf("Change PIN %s, want %s", cp, tc.changePIN)
			}
			if v.Menu.Renew.Visible != tc.renew {
				t.Errorf("Renew visible %v, want %v", v.Menu.Renew.Visible, tc.renew)
			}
			for i, want := range tc.certLines {
				if i >= len(v.Menu.Certificates) || v.Menu.Certificates[i] != want {
					t.Errorf("certificate lines %q, want %q at %d", v.Menu.Certificates, want, i)
				}
			}
			if v.Menu.Quit.Visible != tc.quitVisible {
				t.Errorf("Quit visible %v", v.Menu.Quit.Visible)
			}
			if !v.Menu.Diagnostics.Enabled || !v.Menu.About.Enabled {
				t.Error("Diagnostics and About must always be there")
			}
			if tc.changePIN != "hidden" {
				if v.Menu.Card != "Mary SMITH - NHS series 9/10 (PIV)" {
					t.Errorf("card line %q", v.Menu.Card)
				}
				if v.Card == nil || len(v.Card.ID) != 64 {
					t.Errorf("card facts %+v", v.Card)
				}
			}
		})
	}
}

// A signing for a prescribing page shows in the status line and tooltip while it runs.
func TestBuildActivity(t *testing.T) {
	const words = "Signing 3 prescriptions for https://rx.example.nhs.uk"
	v := Build(Input{Connected: true, Status: withReaders(readyCard(t, 400)), Agent: trayproto.AgentInfo{Activity: words}})
	if v.Menu.Status != words || v.Tooltip != "cardagent: "+words || v.State != StateReady {
		t.Errorf("view %+v", v)
	}
	if v := Build(Input{Connected: true, Status: withReaders(readyCard(t, 400))}); strings.Contains(v.Tooltip, "Signing") {
		t.Errorf("no activity, tooltip %q", v.Tooltip)
	}
}

func TestBuildIsPure(t *testing.T) {
	in := Input{Connected: true, Status: withReaders(readyCard(t, 60)), Agent: trayproto.AgentInfo{RenewalURL: "https://r.example"}}
	a, b := Build(in), Build(in)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same input, different views:\n%+v\n%+v", a, b)
	}
}

func TestTooltipTruncated(t *testing.T) {
	c := readyCard(t, 400)
	h := *c.Holder
	h.Name = strings.Repeat("Ñame ", 60)
	c.Holder = &h
	v := Build(Input{Connected: true, Status: withReaders(c)})
	if len(v.Tooltip) > maxTooltip || !strings.HasSuffix(v.Tooltip, "...") {
		t.Errorf("tooltip of %d bytes: %q", len(v.Tooltip), v.Tooltip)
	}
}

func TestNoticeWords(t *testing.T) {
	v := Build(Input{Connected: true, Status: withReaders(readyCard(t, 60)), Agent: trayproto.AgentInfo{RenewalURL: "https://renew.example.nhs.uk"}})
	if v.Card == nil || v.Card.Expiry.Level != expiry.Warning {
		t.Fatalf("card facts %+v", v.Card)
	}
	for _, want := range []string{"expires in 60 days", "https://renew.example.nhs.uk"} {
		if !strings.Contains(v.Card.Notice, want) {
			t.Errorf("notice %q lacks %q", v.Card.Notice, want)
		}
	}
	v = Build(Input{Connected: true, Status: withReaders(readyCard(t, -1))})
	if !strings.Contains(v.Card.Notice, "Registration Authority") {
		t.Errorf("expired notice %q", v.Card.Notice)
	}
}

// TestBuildHostileCardText: a holder name, card type or hint with escapes,
// line breaks or a bidirectional override reaches the menu, the tooltip and
// the notification cleaned.
func TestBuildHostileCardText(t *testing.T) {
	const hostile = "Mallory\x1b[2J\u202eexe.txt\r\nSecond line\x07"
	ready := readyCard(t, 10)
	ready.Holder.Name = hostile
	ready.Type = "PIV\x1b]0;title\x07"
	bad := readyCard(t, 400)
	bad.Holder = nil
	bad.State = "unsupported"
	bad.Hint = "Insert\nanother\u202ecard"
	for _, in := range []Input{
		{Connected: true, Status: withReaders(ready), Agent: trayproto.AgentInfo{RenewalURL: "https://renew.example"}},
		{Connected: true, Status: withReaders(bad)},
	} {
		v := Build(in)
		texts := []string{v.Tooltip, v.Menu.Status, v.Menu.Card}
		if v.Card != nil {
			texts = append(texts, v.Card.Notice)
		}
		for _, s := range texts {
			for _, r := range s {
				if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) {
					t.Errorf("%q holds %U", s, r)
				}
			}
		}
		if !strings.Contains(v.Menu.Status+v.Menu.Card, "Mallory [2Jexe.txt Second line") && !strings.Contains(v.Menu.Status, "Insert anothercard") {
			t.Errorf("cleaned text missing: status %q card %q", v.Menu.Status, v.Menu.Card)
		}
	}
}
