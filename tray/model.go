// Package tray is the tray process: cardagent's notification-area icon.
//
// The tray is its own program, cardagent-tray (cmd/cardagent-tray, whose
// GUI binding is tray/trayui), started and restarted by the agent's
// trayhost.TraySupervisor when a desktop session is present; this package
// is the code of that process only, and links no card code. The agent's binary never
// links the GUI library (systray: GTK and libayatana-appindicator3 on
// Linux): it runs on machines without GTK, starts faster, and the process
// serving the sign-in API has no GUI toolkit in it, which also matters
// because GTK exits the whole process when it cannot open the display.
// The two processes talk over a private channel: a pair of pipes the
// agent creates for each launch and the child inherits (file descriptors 3
// and 4 on Unix, inherited handles on Windows), carrying newline-delimited
// JSON (package trayproto, the contract between the two). Nothing listens
// on a socket for it, so no other process can reach it, and no secret is needed; when the agent ends, the
// pipe closes and the tray exits with it.
//
// PINs never cross the channel. "Change PIN..." and "Unblock card..." are
// requests: the agent asks for the PINs itself, through its own prompter
// (the desktop dialog, run by the agent, or pinentry), sends them to the
// card, and answers with a result in words that the tray shows.
//
// The tray's state logic is one pure function, Build, from the agent's
// status to a View (icon state, tooltip, menu); the systray calls only
// apply a View.
package tray

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/safetext"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// State is what the icon shows. The names are the icon file names (tray/icons).
type State string

const (
	StateNoReader     State = "no_reader"     // no smart-card reader connected
	StateNoCard       State = "no_card"       // readers, but no card (or a card being read)
	StateReady        State = "ready"         // a card ready for sign-in
	StateAttention    State = "attention"     // the card works but needs attention (certificate expiring, last PIN try)
	StateBlocked      State = "blocked"       // the card cannot sign in: PIN blocked, certificate expired, card unusable
	StateAgentProblem State = "agent_problem" // the agent cannot serve sign-ins: no smart-card service, API down, agent unreachable
)

// States lists every state.
var States = []State{StateNoReader, StateNoCard, StateReady, StateAttention, StateBlocked, StateAgentProblem}

// maxTooltip keeps the tooltip within Windows' 128-character limit.
const maxTooltip = 120

// MaxCertificates is how many certificate lines the menu has room for.
const MaxCertificates = 4

// Input is what Build needs.
type Input struct {
	// Connected: the channel to the agent is up and a status has arrived.
	Connected bool
	// Problem says why the agent cannot be reached (when not Connected).
	Problem string
	Status  wire.Status
	Agent   trayproto.AgentInfo
}

// View is everything the tray shows for one Input.
type View struct {
	State   State  `json:"state"`
	Tooltip string `json:"tooltip"`
	Menu    Menu   `json:"menu"`
	// Card is the card the view describes (nil when none).
	Card *CardFacts `json:"card,omitempty"`
}

// CardFacts are the facts about the shown card that the tray acts on.
type CardFacts struct {
	// ID identifies the card for the once-a-day notification: the SHA-256
	// of its authentication certificate (of its first certificate when it
	// has none), "" when it has no certificate.
	ID     string       `json:"id"`
	Expiry expiry.Check `json:"expiry"`
	// Notice is the expiry notification's text ("" when none is due).
	Notice string `json:"notice,omitempty"`
}

// Menu is the tray menu's content.
type Menu struct {
	// Status is the first, disabled line: the state in words.
	Status string `json:"status"`
	// Card names the holder and the card type ("" hides the line).
	Card string `json:"card,omitempty"`
	// Certificates has one line per certificate: "Authentication certificate: expires in 23 days".
	Certificates []string `json:"certificates,omitempty"`
	// Cards lists every inserted card when there are several (holder,
	// type, reader, state or PIN tries left; at most MaxCards lines).
	Cards       []string `json:"cards,omitempty"`
	Renew       Item     `json:"renew"`
	ChangePIN   Item     `json:"change_pin"`
	Unblock     Item     `json:"unblock"`
	Diagnostics Item     `json:"diagnostics"`
	About       Item     `json:"about"`
	Quit        Item     `json:"quit"`
}

// Item is one actionable menu line.
type Item struct {
	Title   string `json:"title"`
	Visible bool   `json:"visible"`
	Enabled bool   `json:"enabled"`
}

func item(title string, visible, enabled bool) Item {
	return Item{Title: title, Visible: visible, Enabled: visible && enabled}
}

// Build turns the agent's status into what the tray shows. It is pure:
// same input, same view.
func Build(in Input) View {
	policy := expiry.Policy{WarnDays: in.Agent.WarnDays, UrgentDays: in.Agent.UrgentDays}
	if policy.WarnDays <= 0 {
		policy.WarnDays = in.Status.ExpiryWarningDays
	}
	policy = policy.Normalize()

	v := View{Menu: Menu{
		Diagnostics: item("Open diagnostics", true, true),
		About:       item("About cardagent", true, true),
		Quit:        item("Quit cardagent", !in.Agent.HideQuit, true),
	}}
	state, words := agentProblem(in)
	var card *wire.CardState
	if state == "" {
		card = pickCard(in.Status)
		state, words = cardState(in.Status, card, policy)
	}
	if n := usableCards(in.Status); state == StateReady && n > 1 {
		words = fmt.Sprintf("%d smartcards ready: a sign-in asks which to use", n)
	}
	v.State = state
	if in.Agent.Activity != "" && state != StateAgentProblem {
		words = in.Agent.Activity // a signing for a prescribing page, as it happens
	}
	v.Menu.Status = words
	v.Tooltip = truncate("cardagent: "+words, maxTooltip)

	if card == nil || state == StateAgentProblem {
		return v
	}
	v.Menu.Cards = cardLines(in.Status)
	usable := card.State == wire.CardReady
	blocked := card.PIN != nil && card.PIN.Blocked
	if card.Holder != nil || card.Type != "" {
		v.Menu.Card = strings.TrimPrefix(strings.TrimSuffix(holderName(card)+" - "+cardType(card), " - "), " - ")
	}
	for i, c := range card.Certificates {
		if i == MaxCertificates {
			break
		}
		v.Menu.Certificates = append(v.Menu.Certificates,
			capitalize(c.Usage)+" certificate: "+expiry.ExpiresIn(c.DaysLeft, c.Expired))
	}
	v.Menu.Renew = item("Renew certificate...", usable && in.Agent.RenewalURL != "", true)
	v.Menu.ChangePIN = item("Change PIN...", usable, !blocked)
	v.Menu.Unblock = item("Unblock card...", usable, true)

	facts := &CardFacts{ID: cardID(card), Expiry: policy.CheckCard(summaries(card))}
	if facts.Expiry.Level != expiry.OK && usable {
		facts.Notice = expiry.Message(facts.Expiry, in.Agent.RenewalURL)
	}
	v.Card = facts
	return v
}

// agentProblem says whether the agent cannot serve sign-ins, and why.
func agentProblem(in Input) (State, string) {
	switch {
	case !in.Connected:
		why := in.Problem
		if why == "" {
			why = "the cardagent service cannot be reached"
		}
		return StateAgentProblem, "Smartcard sign-in unavailable: " + why
	case in.Agent.APIError != "":
		return StateAgentProblem, "Smartcard sign-in unavailable: " + in.Agent.APIError
	case in.Status.Service == wire.ServiceDown:
		return StateAgentProblem, "The smart-card service is not running: start it (Linux: pcscd; Windows: Smart Card service)"
	case in.Status.Service == wire.ServiceStopped:
		return StateAgentProblem, "The card service has stopped"
	}
	return "", ""
}

// pickCard is the card the icon, the card line and the certificate lines
// describe: the first reader's ready card, else the first card of any kind.
// With several ready cards a sign-in asks the user which to use; the menu
// then lists them all (Menu.Cards).
func pickCard(st wire.Status) *wire.CardState {
	var first *wire.CardState
	for _, r := range st.Readers {
		if r.Card == nil {
			continue
		}
		if r.Card.State == wire.CardReady {
			return r.Card
		}
		if first == nil {
			first = r.Card
		}
	}
	return first
}

func cardState(st wire.Status, card *wire.CardState, policy expiry.Policy) (State, string) {
	if len(st.Readers) == 0 {
		return StateNoReader, "No smart-card reader connected"
	}
	if card == nil {
		return StateNoCard, "No smartcard inserted"
	}
	switch card.State {
	case wire.CardReading:
		return StateNoCard, "Reading the smartcard..."
	case wire.CardReady:
	default:
		why := safetext.Line(card.Hint, maxCardText)
		if why == "" {
			why = "the card could not be read"
		}
		return StateBlocked, "This card cannot be used: " + strings.TrimSuffix(why, ".")
	}
	who := holderName(card)
	if who == "" {
		who = cardType(card)
	}
	if card.PIN != nil && card.PIN.Blocked {
		return StateBlocked, "Card blocked (" + who + "): unblock it with your PUK or contact your Registration Authority"
	}
	check := policy.CheckCard(summaries(card))
	switch check.Level {
	case expiry.Expired:
		return StateBlocked, "Certificate expired (" + who + "): contact your Registration Authority"
	case expiry.Warning, expiry.Urgent:
		return StateAttention, fmt.Sprintf("Certificate %s (%s): renew it now", expiry.ExpiresIn(check.DaysLeft, false), who)
	}
	if card.PIN != nil && card.PIN.TriesLeft == 1 {
		return StateAttention, "Last PIN try before the card is blocked (" + who + ")"
	}
	return StateReady, "Smartcard ready (" + who + ")"
}

// maxCardText bounds one card-supplied string in a menu line or tooltip.
const maxCardText = 256

// holderName and cardType are the card's words, cleaned for a menu, a
// tooltip or a notification (no control, escape or bidirectional
// characters: see safetext.Line).
func holderName(card *wire.CardState) string {
	if card.Holder == nil {
		return ""
	}
	return safetext.Line(card.Holder.Name, maxCardText)
}

func cardType(card *wire.CardState) string { return safetext.Line(card.Type, maxCardText) }

func summaries(card *wire.CardState) []certinfo.Summary {
	out := make([]certinfo.Summary, 0, len(card.Certificates))
	for _, c := range card.Certificates {
		out = append(out, c.Summary)
	}
	return out
}

// cardID is the SHA-256 of the card's authentication certificate (else its first).
func cardID(card *wire.CardState) string {
	id := ""
	for _, c := range card.Certificates {
		if c.Usage == "authentication" {
			return c.SHA256
		}
		if id == "" {
			id = c.SHA256
		}
	}
	return id
}

func capitalize(s string) string {
	if s == "" {
		return "Other"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// truncate cuts s to at most n bytes at a character boundary, with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
