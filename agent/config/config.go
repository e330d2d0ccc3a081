// Package config holds cardagent's configuration and checks it.
//
// The configuration says which web origins may ask the agent to sign in (per
// named environment), the loopback port, the PIN prompt, the PIN policy and
// the limits of the local API.
//
// The configuration is a JSON file (docs/config.md describes every key). A
// file only lists what it changes: Load starts from Default and overlays the
// file with Merge. Unknown keys, keys in the wrong case, repeated keys, null
// values and bad values are rejected with a message that names the key, the
// value and what is allowed, so a typing mistake never silently leaves a
// default in force.
//
// Merge takes a source name for the bytes it applies and records, per key,
// which source set it (Config.Source), so later layers (an IT policy over the
// system file) and `cardagent config show` can say where each value came from.
package config

import (
	"slices"
	"strings"
	"time"

	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/pcsc"
)

// SourceDefault is the source of every value no file set.
const SourceDefault = "default"

// Config is the whole configuration. The zero value is not valid: start from
// Default (Load and Merge do).
type Config struct {
	// Listen is where the loopback API listens. The address is always
	// loopback (127.0.0.1 and ::1); only the port is configurable.
	Listen Listen `json:"listen"`

	// Environment is the name of the active environment (a key of Environments).
	Environment string `json:"environment"`
	// Environments are the named environments IT switches between ("live",
	// "training", "integration", "development", or any other name).
	Environments map[string]Environment `json:"environments"`
	// ExtraOrigins (key allowed_origins) are origins allowed in every
	// environment, besides the active environment's own.
	ExtraOrigins []string `json:"allowed_origins"`

	// Prompt chooses how the agent asks for the PIN.
	Prompt Prompt `json:"prompt"`
	// PIN is the PIN policy: when a PIN is asked, and which PINs are accepted
	// before anything reaches the card.
	PIN PINPolicy `json:"pin"`
	// Limits bound what one page or one user can make the agent do.
	Limits Limits `json:"limits"`
	// PKCS11 optionally serves some card kinds through a vendor PKCS#11 module.
	PKCS11 PKCS11 `json:"pkcs11"`
	// Log sets the agent's log level and format.
	Log Logging `json:"log"`
	// Expiry sets when certificates are shown as expiring.
	Expiry Expiry `json:"expiry"`
	// Tray sets what the notification-area icon offers.
	Tray Tray `json:"tray"`
	// CredentialManagement sets the NHS Credential Management compatible
	// endpoint (the Port Service and the signing hub).
	CredentialManagement CredentialManagement `json:"credential_management"`
	// Session sets what the agent does when the card that signed the user
	// in is removed.
	Session Session `json:"session"`

	// sources maps a key path ("listen.port", "environments.live") to the
	// source that set it; keys that are absent were not set by any file.
	sources map[string]string
	// notes are warnings about where the configuration came from.
	notes []string
}

// Listen is the loopback API's port.
type Listen struct {
	// Port is the first port tried (default 43800).
	Port int `json:"port"`
	// PortRange is how many consecutive ports, starting at Port, the agent
	// tries (default 10: 43800 to 43809). On a host with several users each
	// user's agent takes the first free one; the JS client probes them all.
	PortRange int `json:"port_range"`
}

// Ports lists the ports the agent tries, in order.
func (l Listen) Ports() []int {
	ports := make([]int, 0, l.PortRange)
	for i := range l.PortRange {
		ports = append(ports, l.Port+i)
	}
	return ports
}

// Environment is a set of sign-in origins and the card renewal page that go
// together (live, training, integration, development, ...).
type Environment struct {
	// Origins are the web origins allowed to ask for a sign-in, exactly as a
	// browser serialises them: "https://signin.example.org" or
	// "https://host.example.org:8443" (no path, no trailing slash, no wildcard).
	Origins []string `json:"origins"`
	// RenewalURL is the page where a user renews an expiring certificate
	// (https), or "" when none is configured.
	RenewalURL string `json:"renewal_url"`
	// SigningOrigins are the web origins (prescribing systems) allowed to
	// have the card's signing key sign through the Credential Management
	// compatible endpoint, in the same form as Origins. None by default.
	SigningOrigins []string `json:"signing_origins"`
}

// Prompt backends.
const (
	// BackendAuto uses the desktop dialog when one can be shown, else pinentry.
	BackendAuto = "auto"
	// BackendDialog always uses the desktop dialog (the tray process).
	BackendDialog = "dialog"
	// BackendPinentry always runs the pinentry program.
	BackendPinentry = "pinentry"
)

// Prompt chooses how the PIN is asked.
type Prompt struct {
	// Backend is "auto" (default), "dialog" or "pinentry".
	Backend string `json:"backend"`
	// Pinentry is the absolute path of a pinentry program speaking the
	// Assuan protocol (GnuPG's pinentry-gnome3, pinentry-qt, pinentry-mac, ...).
	Pinentry string `json:"pinentry"`
	// TimeoutSeconds closes an unanswered prompt (default 60).
	TimeoutSeconds int `json:"timeout_seconds"`
}

// Timeout is TimeoutSeconds as a duration.
func (p Prompt) Timeout() time.Duration { return seconds(p.TimeoutSeconds) }

// PIN policies.
const (
	// PINAlways asks for the PIN for every authentication (the default).
	PINAlways = "always"
	// PINCache remembers a card's PIN for CacheSeconds after it was
	// entered; removing the card ends the window at once.
	PINCache = "cache"
)

// PINPolicy says when the PIN is asked and which PINs are accepted.
type PINPolicy struct {
	// Policy is "always" (default) or "cache".
	Policy string `json:"policy"`
	// CacheSeconds is the cache window for the "cache" policy (default 300, at most 3600).
	CacheSeconds int `json:"cache_seconds"`
	// MinLength and MaxLength bound the PIN's length in characters (default 6 and 8).
	MinLength int `json:"min_length"`
	MaxLength int `json:"max_length"`
	// DigitsOnly accepts only the digits 0-9 (default true: NHS PINs are 6 to
	// 8 digits since July 2023). Set it to false where cards with older PINs,
	// which may contain letters, are still in use.
	DigitsOnly bool `json:"digits_only"`
}

// CacheWindow is CacheSeconds as a duration; zero unless Policy is "cache".
func (p PINPolicy) CacheWindow() time.Duration {
	if p.Policy != PINCache {
		return 0
	}
	return seconds(p.CacheSeconds)
}

// Limits bound what pages and users can make the agent do.
type Limits struct {
	// MaxConnections caps open WebSocket connections (default 64).
	MaxConnections int `json:"max_connections"`
	// MaxMessageBytes is the largest WebSocket message read (default 16384);
	// a larger one closes the connection (status 1009).
	MaxMessageBytes int `json:"max_message_bytes"`
	// PromptsPerMinutePerOrigin caps how many PIN prompts one origin can
	// open per minute (default 6).
	PromptsPerMinutePerOrigin int `json:"prompts_per_minute_per_origin"`
	// HandshakeTimeoutSeconds bounds reading an HTTP request's headers and
	// the WebSocket handshake (default 10).
	HandshakeTimeoutSeconds int `json:"handshake_timeout_seconds"`
	// RequestTimeoutSeconds bounds one request, PIN prompt included (default 120).
	RequestTimeoutSeconds int `json:"request_timeout_seconds"`
}

// HandshakeTimeout is HandshakeTimeoutSeconds as a duration.
func (l Limits) HandshakeTimeout() time.Duration { return seconds(l.HandshakeTimeoutSeconds) }

// RequestTimeout is RequestTimeoutSeconds as a duration.
func (l Limits) RequestTimeout() time.Duration { return seconds(l.RequestTimeoutSeconds) }

// PKCS11 optionally serves some card kinds through a vendor PKCS#11 module
// instead of cardagent's own drivers.
type PKCS11 struct {
	// Module is the absolute path of the PKCS#11 library, or "" for none (default).
	Module string `json:"module"`
	// Kinds are the card kinds the module serves: "series8" (default), "piv".
	Kinds []string `json:"kinds"`
}

// CardKinds is Kinds as pcsc.Kind values.
func (p PKCS11) CardKinds() []pcsc.Kind {
	kinds := make([]pcsc.Kind, len(p.Kinds))
	for i, k := range p.Kinds {
		kinds[i] = pcsc.Kind(k)
	}
	return kinds
}

// Expiry sets the certificate expiry warnings. NHS self-renewal opens 90
// days before expiry; an expired card needs a visit to a Registration Authority.
type Expiry struct {
	// WarningDays: inside this many days the tray icon changes, the status
	// reply says "expiring" and a notification appears (at most once a day).
	WarningDays int `json:"warning_days"`
	// UrgentDays: inside this many days the warning is worded as urgent.
	UrgentDays int `json:"urgent_days"`
}

// Policy is the expiry rule these settings give (agent/expiry decides every
// expiry state from it: the status, the tray and doctor).
func (e Expiry) Policy() expiry.Policy {
	return expiry.Policy{WarnDays: e.WarningDays, UrgentDays: e.UrgentDays}.Normalize()
}

// Tray sets what the notification-area icon offers.
type Tray struct {
	// HideQuit hides "Quit cardagent" (IT policy on shared desktops).
	HideQuit bool `json:"hide_quit"`
}

// CredentialManagement sets the NHS Credential Management compatible
// endpoint: the NHS Port Service ports and the signing hub that prescribing
// pages call (docs/credential-management.md).
type CredentialManagement struct {
	// Enabled serves the endpoint (default true; it refuses every page until
	// the active environment lists signing_origins).
	Enabled bool `json:"enabled"`
	// Ports are the Port Service ports tried in order; the first free one is
	// used (default the five NHS Port Service ports).
	Ports []int `json:"ports"`
	// MaxPayloads bounds the items one request may sign (default 50).
	MaxPayloads int `json:"max_payloads"`
	// MaxPayloadBytes bounds one item's decoded size (default 16384).
	MaxPayloadBytes int `json:"max_payload_bytes"`
}

// Removal policies (Session.Removal).
const (
	// RemovalNone: removing the card ends nothing but its PIN cache (the default).
	RemovalNone = "none"
	// RemovalNotify: pages get a session_ended event naming the card.
	RemovalNotify = "notify"
	// RemovalLock: pages get session_ended and the desktop session is locked.
	RemovalLock = "lock"
)

// Session sets what happens when a card that completed a sign-in is
// removed and not put back within the grace period (docs/config.md).
type Session struct {
	// Removal is "none" (default), "notify" or "lock".
	Removal string `json:"removal"`
	// RemovalGraceSeconds is how long a removed card may take to come back
	// (the same card, read again) before its session ends (default 5, 0 to 60).
	RemovalGraceSeconds int `json:"removal_grace_seconds"`
	// LockCommand, when not empty, is the program (an absolute path) and
	// arguments run to lock the desktop instead of the system's own lock.
	LockCommand []string `json:"lock_command"`
}

// RemovalGrace is RemovalGraceSeconds as a duration.
func (s Session) RemovalGrace() time.Duration { return seconds(s.RemovalGraceSeconds) }

// DefaultCMPorts are the NHS Port Service ports.
var DefaultCMPorts = []int{43487, 44213, 45031, 46478, 48853}

// Logging sets the agent's log output.
type Logging struct {
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `json:"level"`
	// Format is "json" (default) or "console".
	Format string `json:"format"`
}

// Default is the configuration used where no file says otherwise.
//
// The built-in environments "live", "training" and "integration" have no
// origins: cardagent does not ship any organisation's sign-in hostnames, IT
// sets them. With no allowed origin the agent refuses every page (Warnings
// says so). Only "development" has one, the demo site https://localhost:8443.
func Default() Config {
	return Config{
		Listen:      Listen{Port: 43800, PortRange: 10},
		Environment: "live",
		Environments: map[string]Environment{
			"live":        {Origins: []string{}, SigningOrigins: []string{}},
			"training":    {Origins: []string{}, SigningOrigins: []string{}},
			"integration": {Origins: []string{}, SigningOrigins: []string{}},
			"development": {Origins: []string{"https://localhost:8443"}, SigningOrigins: []string{"https://localhost:8443"}},
		},
		ExtraOrigins: []string{},
		Prompt: Prompt{
			Backend:        BackendAuto,
			Pinentry:       defaultPinentry,
			TimeoutSeconds: 60,
		},
		PIN: PINPolicy{
			Policy:       PINAlways,
			CacheSeconds: 300,
			MinLength:    6,
			MaxLength:    8,
			DigitsOnly:   true,
		},
		Limits: Limits{
			MaxConnections:            64,
			MaxMessageBytes:           16384,
			PromptsPerMinutePerOrigin: 6,
			HandshakeTimeoutSeconds:   10,
			RequestTimeoutSeconds:     120,
		},
		PKCS11: PKCS11{Module: "", Kinds: []string{string(pcsc.KindSeries8)}},
		Log:    Logging{Level: "info", Format: "json"},
		Expiry: Expiry{WarningDays: 90, UrgentDays: 14},
		Tray:   Tray{HideQuit: false},
		CredentialManagement: CredentialManagement{
			Enabled:         true,
			Ports:           slices.Clone(DefaultCMPorts),
			MaxPayloads:     50,
			MaxPayloadBytes: 16384,
		},
		Session: Session{Removal: RemovalNone, RemovalGraceSeconds: 5, LockCommand: []string{}},
	}
}

// ActiveEnvironment is the active environment's settings (zero when the
// name is not defined; Validate rejects that).
func (c Config) ActiveEnvironment() Environment {
	return c.Environments[c.Environment]
}

// AllowedOrigins is every origin allowed in the active environment: its own
// origins followed by the global allowed_origins, without repeats. A page's
// Origin must equal one of them exactly.
func (c Config) AllowedOrigins() []string {
	env := c.Environments[c.Environment]
	out := make([]string, 0, len(env.Origins)+len(c.ExtraOrigins))
	for _, o := range slices.Concat(env.Origins, c.ExtraOrigins) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// SigningOrigins is every origin allowed to sign through the Credential
// Management compatible endpoint in the active environment.
func (c Config) SigningOrigins() []string {
	return slices.Clone(c.Environments[c.Environment].SigningOrigins)
}

// PageOrigins is every origin whose pages reach the agent in the active
// environment (sign-in, then signing origins, without repeats): what the
// browsers' Local Network Access policies must list.
func (c Config) PageOrigins() []string {
	out := c.AllowedOrigins()
	for _, o := range c.SigningOrigins() {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// RenewalURL is the active environment's certificate renewal page, or "".
func (c Config) RenewalURL() string {
	return c.Environments[c.Environment].RenewalURL
}

// Source says which source set key, a dotted key path such as
// "listen.port", "environments.live" or "allowed_origins[2]": the source name
// given to Merge (for Load, the file's path), or SourceDefault. An
// environment, and a list, is set as a whole by one source.
func (c Config) Source(key string) string {
	for {
		if s, ok := c.sources[key]; ok {
			return s
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return SourceDefault
		}
		key = key[:i]
	}
}

// Sources returns a copy of the key paths set by a source other than the
// defaults, each with its source.
func (c Config) Sources() map[string]string {
	m := make(map[string]string, len(c.sources))
	for k, v := range c.sources {
		m[k] = v
	}
	return m
}

// Warnings lists things that are valid but that an administrator should
// hear about; the agent logs them at start-up.
func (c Config) Warnings() []string {
	w := slices.Clone(c.notes)
	if len(c.AllowedOrigins()) == 0 {
		w = append(w, "no allowed origin in environment "+quote(c.Environment)+
			": every page will be refused until environments."+c.Environment+".origins or allowed_origins lists the sign-in origins")
	}
	if c.Environment == "development" {
		w = append(w, "the development environment is active: only for testing")
	}
	if len(c.Session.LockCommand) > 0 && c.Session.Removal != RemovalLock {
		w = append(w, "session.lock_command is set but session.removal is "+quote(c.Session.Removal)+": the command is never run")
	}
	for _, o := range c.AllowedOrigins() {
		if strings.HasPrefix(o, "http://") {
			w = append(w, "origin "+o+" is plain http: use it for development only")
		}
	}
	return w
}

// clone is a deep copy of c (maps and slices are not shared).
func (c Config) clone() Config {
	d := c
	if c.Environments != nil {
		d.Environments = make(map[string]Environment, len(c.Environments))
		for k, e := range c.Environments {
			e.Origins = slices.Clone(e.Origins)
			e.SigningOrigins = slices.Clone(e.SigningOrigins)
			d.Environments[k] = e
		}
	}
	d.ExtraOrigins = slices.Clone(c.ExtraOrigins)
	d.PKCS11.Kinds = slices.Clone(c.PKCS11.Kinds)
	d.CredentialManagement.Ports = slices.Clone(c.CredentialManagement.Ports)
	d.Session.LockCommand = slices.Clone(c.Session.LockCommand)
	d.sources = c.Sources()
	d.notes = slices.Clone(c.notes)
	return d
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }
