// Package expiry decides what the user is told as a card's certificates near
// their end.
//
// It decides the warning window (90 days by default: NHS self-renewal opens
// 90 days before expiry), the words of the warning, and how often a desktop
// notification may repeat (at most once a day per card, remembered across
// restarts in the user's state directory).
//
// It depends only on certinfo, so both the agent (status replies) and the
// tray process can use it.
package expiry

import (
	"fmt"
	"strconv"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/wire"
)

// Defaults of Policy.
const (
	// DefaultWarnDays is the warning window: self-renewal opens 90 days before expiry.
	DefaultWarnDays = 90
	// DefaultUrgentDays is when the warning becomes urgent (renew today).
	DefaultUrgentDays = 14
)

// Policy holds the thresholds, in days left.
type Policy struct {
	// WarnDays: a certificate with fewer days left than this is inside the
	// warning window (the tray icon changes, a notification appears).
	WarnDays int
	// UrgentDays: with fewer days left the warning is urgent.
	UrgentDays int
}

// DefaultPolicy is 90 and 14 days.
func DefaultPolicy() Policy { return Policy{WarnDays: DefaultWarnDays, UrgentDays: DefaultUrgentDays} }

// Normalize fills zero or negative thresholds with the defaults and keeps
// UrgentDays within WarnDays.
func (p Policy) Normalize() Policy {
	if p.WarnDays <= 0 {
		p.WarnDays = DefaultWarnDays
	}
	if p.UrgentDays <= 0 {
		p.UrgentDays = DefaultUrgentDays
	}
	if p.UrgentDays > p.WarnDays {
		p.UrgentDays = p.WarnDays
	}
	return p
}

// Level is how close a certificate is to its end.
type Level int

const (
	// OK: outside the warning window.
	OK Level = iota
	// Warning: inside the window; the user should renew soon.
	Warning
	// Urgent: fewer than UrgentDays left.
	Urgent
	// Expired: the certificate can no longer be used; only a Registration Authority can renew it.
	Expired
)

func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Urgent:
		return "urgent"
	case Expired:
		return "expired"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// Attention reports whether the level needs the user to act (Warning or Urgent;
// Expired is worse than attention: the card cannot sign in).
func (l Level) Attention() bool { return l == Warning || l == Urgent }

// Classify places daysLeft (whole days, negative once expired; see
// certinfo.DaysLeft) against p. expired forces Expired (the last day counts
// as 0 days left but may already be past NotAfter).
func (p Policy) Classify(daysLeft int, expired bool) Level {
	p = p.Normalize()
	switch {
	case expired || daysLeft < 0:
		return Expired
	case daysLeft < p.UrgentDays:
		return Urgent
	case daysLeft < p.WarnDays:
		return Warning
	}
	return OK
}

// State is the protocol's word for a certificate's expiry against p:
// wire.ExpiryOK, wire.ExpiryExpiring (Warning or Urgent) or
// wire.ExpiryExpired. The agent's status, the tray and doctor all decide
// expiry through Classify, so they never disagree.
func (p Policy) State(c certinfo.Summary) string {
	switch p.Classify(c.DaysLeft, c.Expired) {
	case Expired:
		return wire.ExpiryExpired
	case Warning, Urgent:
		return wire.ExpiryExpiring
	}
	return wire.ExpiryOK
}

// Soonest returns the certificate that ends first among certs and true, or
// false when there is none. A card is only as usable as its certificate
// that ends first.
func Soonest(certs []certinfo.Summary) (certinfo.Summary, bool) {
	var best certinfo.Summary
	found := false
	for _, c := range certs {
		if !found || c.NotAfter.Before(best.NotAfter) {
			best, found = c, true
		}
	}
	return best, found
}

// Check is the verdict on a card's certificates.
type Check struct {
	Level Level
	// DaysLeft of the certificate that ends first.
	DaysLeft int
	// Usage of that certificate ("authentication", "signature").
	Usage string
}

// CheckCard classifies the certificate of certs that ends first; a card
// without certificates is OK (there is nothing to renew).
func (p Policy) CheckCard(certs []certinfo.Summary) Check {
	c, ok := Soonest(certs)
	if !ok {
		return Check{Level: OK}
	}
	return Check{Level: p.Classify(c.DaysLeft, c.Expired), DaysLeft: c.DaysLeft, Usage: c.Usage}
}

// ExpiresIn says a certificate's remaining life in words: "expires in 23
// days", "expires tomorrow", "expires today", "expired".
func ExpiresIn(daysLeft int, expired bool) string {
	switch {
	case expired || daysLeft < 0:
		return "expired"
	case daysLeft == 0:
		return "expires today"
	case daysLeft == 1:
		return "expires tomorrow"
	}
	return "expires in " + strconv.Itoa(daysLeft) + " days"
}

// Message is the notification (and tooltip detail) for a verdict, in plain
// words: the days left and how to renew. renewalURL is the active
// environment's renewal page ("" when none is configured). OK gives "".
func Message(c Check, renewalURL string) string {
	how := "Renew it now from the cardagent icon (Renew certificate...)"
	if renewalURL != "" {
		how = "Renew it now at " + renewalURL
	}
	switch c.Level {
	case Warning, Urgent:
		when := ExpiresIn(c.DaysLeft, false)
		msg := fmt.Sprintf("Your smartcard certificate %s. %s, while the card still works: once it has expired, only your Registration Authority can renew it.", when, how)
		if c.Level == Urgent {
			msg = "Act today: " + msg
		}
		return msg
	case Expired:
		return "Your smartcard certificate has expired, so the card can no longer sign you in. It cannot be renewed online: contact your Registration Authority (RA) to have your card renewed."
	}
	return ""
}
