package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cardagent/cardagent/pcsc"
)

// Validate checks every value and returns all problems found, joined, each
// an *Error naming the key, the value, the source that set it and what is
// allowed.
func (c Config) Validate() error {
	v := validator{c: c}
	v.check()
	return errors.Join(v.errs...)
}

type validator struct {
	c    Config
	errs []error
}

// bad records a problem with key's value.
func (v *validator) bad(key string, value any, msg string) {
	src := v.c.Source(key)
	if src == SourceDefault {
		src = ""
	}
	var val string
	switch x := value.(type) {
	case string:
		val = strconv.Quote(x)
	default:
		val = fmt.Sprint(x)
	}
	v.errs = append(v.errs, &Error{Source: src, Key: key, Msg: val + " is not allowed: " + msg})
}

func (v *validator) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.bad(key, n, fmt.Sprintf("want %d to %d", lo, hi))
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.bad(key, s, "want "+orList(allowed))
	}
}

func (v *validator) check() {
	c := v.c
	v.intRange("listen.port", c.Listen.Port, 1024, 65535)
	v.intRange("listen.port_range", c.Listen.PortRange, 1, 100)
	if c.Listen.Port >= 1024 && c.Listen.PortRange >= 1 && c.Listen.Port+c.Listen.PortRange-1 > 65535 {
		v.bad("listen.port_range", c.Listen.PortRange, fmt.Sprintf("ports %d to %d go past 65535", c.Listen.Port, c.Listen.Port+c.Listen.PortRange-1))
	}

	names := make([]string, 0, len(c.Environments))
	for name := range c.Environments {
		names = append(names, name)
	}
	sort.Strings(names)
	if _, ok := c.Environments[c.Environment]; !ok {
		v.bad("environment", c.Environment, "not one of the environments defined: "+orList(names))
	}
	for _, name := range names {
		key := "environments." + name
		if !envName.MatchString(name) {
			v.bad(key, name, "an environment name is 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit")
		}
		env := c.Environments[name]
		v.origins(key+".origins", env.Origins)
		v.origins(key+".signing_origins", env.SigningOrigins)
		if env.RenewalURL != "" {
			if err := checkRenewalURL(env.RenewalURL); err != nil {
				v.bad(key+".renewal_url", env.RenewalURL, err.Error())
			}
		}
	}
	v.origins("allowed_origins", c.ExtraOrigins)

	cm := c.CredentialManagement
	if len(cm.Ports) < 1 || len(cm.Ports) > 10 {
		v.bad("credential_management.ports", cm.Ports, "want 1 to 10 ports")
	}
	for i, p := range cm.Ports {
		v.intRange(fmt.Sprintf("credential_management.ports[%d]", i), p, 1024, 65535)
	}
	v.intRange("credential_management.max_payloads", cm.MaxPayloads, 1, 500)
	v.intRange("credential_management.max_payload_bytes", cm.MaxPayloadBytes, 256, 65536)

	v.oneOf("prompt.backend", c.Prompt.Backend, BackendAuto, BackendDialog, BackendPinentry)
	if c.Prompt.Pinentry != "" && !filepath.IsAbs(c.Prompt.Pinentry) {
		v.bad("prompt.pinentry", c.Prompt.Pinentry, "want an absolute path")
	}
	if c.Prompt.Backend == BackendPinentry && c.Prompt.Pinentry == "" {
		v.bad("prompt.pinentry", c.Prompt.Pinentry, `prompt.backend "pinentry" needs the path of a pinentry program`)
	}
	v.intRange("prompt.timeout_seconds", c.Prompt.TimeoutSeconds, 5, 600)

	v.oneOf("pin.policy", c.PIN.Policy, PINAlways, PINCache)
	if c.PIN.Policy == PINCache {
		v.intRange("pin.cache_seconds", c.PIN.CacheSeconds, 1, 3600)
	} else {
		v.intRange("pin.cache_seconds", c.PIN.CacheSeconds, 0, 3600)
	}
	v.intRange("pin.min_length", c.PIN.MinLength, 1, 16)
	if c.PIN.MaxLength < c.PIN.MinLength || c.PIN.MaxLength > 16 {
		v.bad("pin.max_length", c.PIN.MaxLength, fmt.Sprintf("want pin.min_length (%d) to 16", c.PIN.MinLength))
	}

	v.intRange("limits.max_connections", c.Limits.MaxConnections, 1, 4096)
	v.intRange("limits.max_message_bytes", c.Limits.MaxMessageBytes, 1024, 1<<20)
	v.intRange("limits.prompts_per_minute_per_origin", c.Limits.PromptsPerMinutePerOrigin, 1, 60)
	v.intRange("limits.handshake_timeout_seconds", c.Limits.HandshakeTimeoutSeconds, 1, 60)
	v.intRange("limits.request_timeout_seconds", c.Limits.RequestTimeoutSeconds, 5, 3600)
	if c.Limits.RequestTimeoutSeconds < c.Prompt.TimeoutSeconds {
		v.bad("limits.request_timeout_seconds", c.Limits.RequestTimeoutSeconds,
			fmt.Sprintf("a request includes its PIN prompt: want at least prompt.timeout_seconds (%d)", c.Prompt.TimeoutSeconds))
	}

	if c.PKCS11.Module != "" && !filepath.IsAbs(c.PKCS11.Module) {
		v.bad("pkcs11.module", c.PKCS11.Module, "want an absolute path, or \"\" for none")
	}
	kinds := []string{string(pcsc.KindSeries8), string(pcsc.KindPIV)}
	if len(c.PKCS11.Kinds) == 0 {
		v.bad("pkcs11.kinds", "[]", "list at least one of "+orList(kinds))
	}
	for i, k := range c.PKCS11.Kinds {
		key := fmt.Sprintf("pkcs11.kinds[%d]", i)
		v.oneOf(key, k, kinds...)
		if slices.Index(c.PKCS11.Kinds, k) < i {
			v.bad(key, k, "listed twice")
		}
	}

	v.session(c.Session)

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")

	if c.Expiry.WarningDays < 1 || c.Expiry.WarningDays > 730 {
		v.bad("expiry.warning_days", fmt.Sprint(c.Expiry.WarningDays), "want 1 to 730")
	}
	if c.Expiry.UrgentDays < 0 || c.Expiry.UrgentDays > c.Expiry.WarningDays {
		v.bad("expiry.urgent_days", fmt.Sprint(c.Expiry.UrgentDays), "want 0 to expiry.warning_days")
	}
}

// MaxLockCommandArgs bounds session.lock_command's length (program included).
const MaxLockCommandArgs = 16

func (v *validator) session(s Session) {
	v.oneOf("session.removal", s.Removal, RemovalNone, RemovalNotify, RemovalLock)
	v.intRange("session.removal_grace_seconds", s.RemovalGraceSeconds, 0, 60)
	if len(s.LockCommand) > MaxLockCommandArgs {
		v.bad("session.lock_command", fmt.Sprintf("%d items", len(s.LockCommand)), fmt.Sprintf("want at most %d: the program and its arguments", MaxLockCommandArgs))
		return
	}
	for i, a := range s.LockCommand {
		key := fmt.Sprintf("session.lock_command[%d]", i)
		switch {
		case a == "":
			v.bad(key, a, "an argument cannot be empty")
		case strings.ContainsRune(a, 0):
			v.bad(key, a, "an argument cannot contain a NUL character")
		case len(a) > 1024:
			v.bad(key, a[:32]+"...", "longer than 1024 bytes")
		case i == 0 && !filepath.IsAbs(a):
			v.bad(key, a, "want the program's absolute path (no search in PATH)")
		}
	}
}

func (v *validator) origins(key string, list []string) {
	for i, o := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		n, err := NormalizeOrigin(o)
		switch {
		case err != nil:
			v.bad(k, o, err.Error())
		case n != o:
			v.bad(k, o, "write it as "+strconv.Quote(n)+", the way a browser sends it")
		}
	}
}

var envName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// loopbackHosts may use plain http (development only).
var loopbackHosts = []string{"localhost", "127.0.0.1", "[::1]"}

// NormalizeOrigin checks a web origin and returns it in the form a browser
// sends in its Origin header: "https://host" or "https://host:port", the
// default port left out, an IPv6 address in brackets in its canonical form.
// It accepts only https, or http for localhost, 127.0.0.1 and [::1]; a host
// in lower case (non-ASCII names in their xn-- form); no user name,
// path (a lone trailing "/" is dropped), query, fragment or wildcard. The
// error says, in plain words, what is wrong.
func NormalizeOrigin(s string) (string, error) {
	if s == "" {
		return "", errors.New("an origin cannot be empty")
	}
	if strings.ContainsAny(s, "*") {
		return "", errors.New("wildcards are not supported: list each origin")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return "", errors.New("an origin cannot contain spaces or control characters")
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", errors.New(`want "https://" followed by the host, e.g. "https://signin.example.org"`)
	}
	if scheme != "https" && scheme != "http" {
		if l := strings.ToLower(scheme); l == "https" || l == "http" {
			return "", errors.New("write the scheme in lower case")
		}
		return "", errors.New(`the scheme must be "https"`)
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.Contains(rest, "@"):
		return "", errors.New("an origin has no user name or password")
	case strings.ContainsAny(rest, "?"):
		return "", errors.New("an origin has no query (\"?...\")")
	case strings.ContainsAny(rest, "#"):
		return "", errors.New("an origin has no fragment (\"#...\")")
	case strings.ContainsAny(rest, "/\\"):
		return "", errors.New("an origin has no path: keep only scheme, host and port")
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return "", err
	}
	if scheme == "http" && !slices.Contains(loopbackHosts, host) {
		return "", errors.New("plain http is allowed only for localhost, 127.0.0.1 and [::1]: use https")
	}
	if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) {
		port = 0
	}
	if port == 0 {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + strconv.Itoa(port), nil
}

// splitHostPort splits "host[:port]" and checks both; the host comes back
// normalised (IPv6 in brackets), the port as 0 when absent.
func splitHostPort(hp string) (host string, port int, err error) {
	var portStr string
	hasPort := false
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", 0, errors.New("an IPv6 address needs a closing ']'")
		}
		addr, err := netip.ParseAddr(hp[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" || addr.Is4In6() {
			return "", 0, errors.New("not a valid IPv6 address")
		}
		host = "[" + addr.String() + "]"
		after := hp[end+1:]
		if after != "" {
			if !strings.HasPrefix(after, ":") {
				return "", 0, errors.New("unexpected text after the IPv6 address")
			}
			portStr, hasPort = after[1:], true
		}
	} else {
		h, p, found := strings.Cut(hp, ":")
		host, portStr, hasPort = h, p, found
		if err := checkHostName(host); err != nil {
			return "", 0, err
		}
	}
	if hasPort {
		if portStr == "" || len(portStr) > 5 || strings.Trim(portStr, "0123456789") != "" {
			return "", 0, errors.New("the port must be a number from 1 to 65535")
		}
		port, _ = strconv.Atoi(portStr)
		if port < 1 || port > 65535 {
			return "", 0, errors.New("the port must be a number from 1 to 65535")
		}
	}
	return host, port, nil
}

func checkHostName(h string) error {
	if h == "" {
		return errors.New("the host is missing")
	}
	for _, r := range h {
		if r >= 0x80 {
			return errors.New("write a non-ASCII host name in its xn-- (punycode) form, as browsers send it")
		}
	}
	if h != strings.ToLower(h) {
		return errors.New("write the host name in lower case, as browsers send it: " + strconv.Quote(strings.ToLower(h)))
	}
	if strings.Trim(h, "0123456789.") == "" { // looks like an IPv4 address
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is4() || a.String() != h {
			return errors.New("not a valid IPv4 address")
		}
		return nil
	}
	if len(h) > 253 {
		return errors.New("the host name is longer than 253 characters")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		switch {
		case l == "" && h[len(h)-1] == '.':
			return errors.New("remove the dot at the end of the host name")
		case l == "":
			return errors.New("the host name has an empty label (\"..\" or a leading dot)")
		case len(l) > 63:
			return errors.New("a label of the host name is longer than 63 characters")
		case strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "":
			return errors.New("a host name has only letters, digits, '-', '_' and dots")
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("the last label of a host name cannot be a number")
	}
	return nil
}

// checkRenewalURL accepts an absolute https URL (http for loopback hosts)
// with no user name or password.
func checkRenewalURL(s string) error {
	if len(s) > 2048 {
		return errors.New("longer than 2048 characters")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return errors.New("a URL cannot contain spaces or control characters")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return errors.New(`want an absolute URL such as "https://renew.example.org/"`)
	}
	if u.User != nil {
		return errors.New("a renewal URL has no user name or password")
	}
	if _, err := NormalizeOrigin(u.Scheme + "://" + u.Host); err != nil {
		return err
	}
	return nil
}

func orList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	switch len(q) {
	case 0:
		return "(none)"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// PINFormatError is a PIN the policy does not accept; nothing was sent to
// the card and no try was spent. It matches pcsc.ErrPINFormat. Reason never
// contains the PIN.
type PINFormatError struct {
	// Reason says what a PIN must look like, e.g. "the PIN must be 6 to 8 digits".
	Reason string
}

func (e *PINFormatError) Error() string { return pcsc.ErrPINFormat.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, pcsc.ErrPINFormat) true.
func (e *PINFormatError) Unwrap() error { return pcsc.ErrPINFormat }

// UserMessage is Reason as a sentence to show in a PIN prompt.
func (e *PINFormatError) UserMessage() string {
	if e.Reason == "" {
		return ""
	}
	return strings.ToUpper(e.Reason[:1]) + e.Reason[1:] + "."
}

// Check tells whether pin has a format the policy accepts, before anything
// reaches the card: a length from MinLength to MaxLength, and only the
// digits 0-9 when DigitsOnly (else printable ASCII with no spaces). It
// returns a *PINFormatError otherwise.
func (p PINPolicy) Check(pin []byte) error {
	if len(pin) == 0 {
		return &PINFormatError{Reason: "no PIN was entered"}
	}
	what := "characters"
	if p.DigitsOnly {
		what = "digits"
	}
	length := fmt.Sprintf("the PIN must be %d to %d %s", p.MinLength, p.MaxLength, what)
	if p.MinLength == p.MaxLength {
		length = fmt.Sprintf("the PIN must be %d %s", p.MinLength, what)
	}
	for _, b := range pin {
		if p.DigitsOnly && (b < '0' || b > '9') {
			return &PINFormatError{Reason: length + " (0-9 only)"}
		}
		if b <= ' ' || b >= 0x7f {
			return &PINFormatError{Reason: "the PIN can only have letters, digits and symbols, without spaces or accents"}
		}
	}
	if len(pin) < p.MinLength || len(pin) > p.MaxLength {
		return &PINFormatError{Reason: length}
	}
	return nil
}
