package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/cardagent/cardagent/agent/config/plist"
)

// IT policy is the top layer of the configuration:
//
//	built-in defaults < configuration file < IT policy
//
// Policy comes from the Windows registry (HKLM\Software\Policies\cardagent),
// macOS managed preferences (/Library/Managed Preferences/org.cardagent.agent.plist,
// written by an MDM configuration profile) or, on Linux, /etc/cardagent/policy.json.
// Nothing a user controls is layered above it. While a policy is in force,
// the security settings (environment, environments, allowed_origins, pin,
// credential_management and session) come only from the system
// configuration file and the policy: a file named with --config cannot
// change them.

// Policy is the IT policy read from one place.
type Policy struct {
	// Location names where it was read ("/etc/cardagent/policy.json",
	// `HKLM\Software\Policies\cardagent`, ...).
	Location string
	// JSON is a document in config.json's schema (the Linux policy file, or
	// the policy value "Config"), applied first; nil when there is none.
	JSON []byte
	// JSONSource names JSON in messages and Config.Source.
	JSONSource string
	// Values are named settings (registry values, managed preference keys),
	// applied after JSON. PolicySettings lists the names.
	Values []PolicyValue
}

// PolicyValue is one named policy setting. Value is a string, a []string,
// an int64 or a bool (what the registry and property lists hold).
type PolicyValue struct {
	Name   string
	Value  any
	Source string // names the value in messages and Config.Source
}

// PolicySource reads the IT policy; it returns nil, nil when none is set.
type PolicySource interface {
	ReadPolicy() (*Policy, error)
}

// SecurityKeys are the settings no file named with --config may change while
// an IT policy is in force.
// session is one: a user's file must not turn off the removal policy IT set
// (nor name the program the agent runs to lock the desktop).
var SecurityKeys = []string{"environment", "environments", "allowed_origins", "pin", "credential_management", "session"}

type policyKind int

const (
	kindString policyKind = iota
	kindList
	kindInt
	kindBool
	kindJSON
	// kindArgv is a program and its arguments: a list, each item kept as
	// is (a path may hold spaces), or one text value for the program alone.
	kindArgv
)

type policyName struct {
	Name, Key string
	kind      policyKind
}

// policyNames maps each named policy setting to its configuration key
// (docs/deployment.md lists them). "Config" holds a whole JSON document.
var policyNames = []policyName{
	{"Config", "", kindJSON},
	{"Environment", "environment", kindString},
	{"AllowedOrigins", "allowed_origins", kindList},
	{"Port", "listen.port", kindInt},
	{"PortRange", "listen.port_range", kindInt},
	{"PromptBackend", "prompt.backend", kindString},
	{"Pinentry", "prompt.pinentry", kindString},
	{"PromptTimeoutSeconds", "prompt.timeout_seconds", kindInt},
	{"PINPolicy", "pin.policy", kindString},
	{"PINCacheSeconds", "pin.cache_seconds", kindInt},
	{"PINMinLength", "pin.min_length", kindInt},
	{"PINMaxLength", "pin.max_length", kindInt},
	{"PINDigitsOnly", "pin.digits_only", kindBool},
	{"PKCS11Module", "pkcs11.module", kindString},
	{"LogLevel", "log.level", kindString},
	{"ExpiryWarningDays", "expiry.warning_days", kindInt},
	{"TrayHideQuit", "tray.hide_quit", kindBool},
	{"CredentialManagementEnabled", "credential_management.enabled", kindBool},
	{"SessionRemoval", "session.removal", kindString},
	{"SessionRemovalGraceSeconds", "session.removal_grace_seconds", kindInt},
	{"SessionLockCommand", "session.lock_command", kindArgv},
}

// LoadEffective loads the configuration as the agent runs with it: the
// file at path (DefaultPath() when "") over the defaults, then this
// system's IT policy (SystemPolicy).
func LoadEffective(path string) (Config, error) {
	return LoadLayered(path, SystemPolicy())
}

// LoadLayered is LoadEffective with the policy read from p (nil for none).
func LoadLayered(path string, p PolicySource) (Config, error) {
	c, err := Load(path)
	if err != nil {
		return Config{}, err
	}
	if p == nil {
		return c, nil
	}
	pol, err := p.ReadPolicy()
	if err != nil {
		return Config{}, fmt.Errorf("reading IT policy: %w", err)
	}
	if pol == nil {
		return c, nil
	}
	if path != "" && path != DefaultPath() {
		if c, err = lockSecurity(c, path, pol.Location); err != nil {
			return Config{}, err
		}
	}
	if c, err = pol.apply(c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// lockSecurity takes the security settings from the system file, not from
// the file the user named.
func lockSecurity(c Config, path, location string) (Config, error) {
	var changed []string
	for k, src := range c.sources {
		if src == path && isSecurityKey(k) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return c, nil
	}
	sys, err := Load("")
	if err != nil {
		return Config{}, fmt.Errorf("IT policy is in force, so the security settings come from the system configuration: %w", err)
	}
	d := c.clone()
	sys = sys.clone()
	d.Environment, d.Environments, d.ExtraOrigins, d.PIN = sys.Environment, sys.Environments, sys.ExtraOrigins, sys.PIN
	d.CredentialManagement = sys.CredentialManagement
	d.Session = sys.Session
	for k := range d.sources {
		if isSecurityKey(k) {
			delete(d.sources, k)
		}
	}
	for k, v := range sys.sources {
		if isSecurityKey(k) {
			d.sources[k] = v
		}
	}
	slices.Sort(changed)
	d.notes = append(d.notes, "IT policy ("+location+") is in force: "+strings.Join(changed, ", ")+
		" from "+path+" ignored; security settings come from "+DefaultPath()+" and the policy")
	return d, nil
}

func isSecurityKey(k string) bool {
	for _, s := range SecurityKeys {
		if k == s || strings.HasPrefix(k, s+".") || strings.HasPrefix(k, s+"[") {
			return true
		}
	}
	return false
}

// apply merges the policy over c.
func (p *Policy) apply(c Config) (Config, error) {
	var err error
	if p.JSON != nil {
		src := p.JSONSource
		if src == "" {
			src = p.Location
		}
		if c, err = Merge(c, p.JSON, src); err != nil {
			return Config{}, err
		}
	}
	for _, v := range p.Values {
		src := v.Source
		if src == "" {
			src = p.Location + `\` + v.Name
		}
		i := slices.IndexFunc(policyNames, func(n policyName) bool { return strings.EqualFold(n.Name, v.Name) })
		if i < 0 {
			return Config{}, &Error{Source: src, Msg: "unknown policy setting " + strconv.Quote(v.Name) + "; known: " + policyNameList()}
		}
		n := policyNames[i]
		if n.kind == kindJSON {
			s, ok := v.Value.(string)
			if !ok {
				return Config{}, &Error{Source: src, Msg: "want a string holding a JSON configuration document"}
			}
			if c, err = Merge(c, []byte(s), src); err != nil {
				return Config{}, err
			}
			continue
		}
		val, set, err := convertPolicy(n.kind, v.Value)
		if err != nil {
			return Config{}, &Error{Source: src, Key: n.Key, Msg: err.Error()}
		}
		if !set {
			continue // an empty value means "not configured"
		}
		overlay, err := json.Marshal(nest(n.Key, val))
		if err != nil {
			return Config{}, &Error{Source: src, Key: n.Key, Msg: err.Error()}
		}
		if c, err = Merge(c, overlay, src); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

func policyNameList() string {
	names := make([]string, len(policyNames))
	for i, n := range policyNames {
		names[i] = n.Name
	}
	return strings.Join(names, ", ")
}

// PolicySettings lists the named policy settings (registry values, managed
// preference keys), each with the configuration key it sets ("" for
// Config, which holds a whole JSON document).
func PolicySettings() [][2]string {
	out := make([][2]string, len(policyNames))
	for i, n := range policyNames {
		out[i] = [2]string{n.Name, n.Key}
	}
	return out
}

// convertPolicy turns a registry or property-list value into the JSON
// value of a key of the given kind; set is false for an empty value.
func convertPolicy(kind policyKind, v any) (val any, set bool, err error) {
	switch kind {
	case kindString:
		switch x := v.(type) {
		case string:
			return x, x != "", nil
		case []string:
			if len(x) == 1 {
				return x[0], x[0] != "", nil
			}
		}
		return nil, false, fmt.Errorf("want one text value, got %s", describePolicy(v))
	case kindList:
		var items []string
		switch x := v.(type) {
		case string:
			items = strings.FieldsFunc(x, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '\t' || r == '\n' || r == '\r' })
		case []string:
			for _, s := range x {
				if s = strings.TrimSpace(s); s != "" {
					items = append(items, s)
				}
			}
		default:
			return nil, false, fmt.Errorf("want a list of text values (or one text value separated by spaces, commas or semicolons), got %s", describePolicy(v))
		}
		return items, len(items) > 0, nil
	case kindArgv:
		switch x := v.(type) {
		case string:
			return []string{x}, x != "", nil
		case []string:
			return x, len(x) > 0, nil
		}
		return nil, false, fmt.Errorf("want a list of text values, the program then its arguments (REG_MULTI_SZ or an array of strings), got %s", describePolicy(v))
	case kindInt:
		switch x := v.(type) {
		case int64:
			return x, true, nil
		case string:
			if x == "" {
				return nil, false, nil
			}
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
			if err != nil {
				return nil, false, fmt.Errorf("want a whole number, got %q", x)
			}
			return n, true, nil
		}
		return nil, false, fmt.Errorf("want a whole number (REG_DWORD or <integer>), got %s", describePolicy(v))
	case kindBool:
		switch x := v.(type) {
		case bool:
			return x, true, nil
		case int64:
			if x == 0 || x == 1 {
				return x == 1, true, nil
			}
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "":
				return nil, false, nil
			case "true", "1":
				return true, true, nil
			case "false", "0":
				return false, true, nil
			}
		}
		return nil, false, fmt.Errorf("want true or false (REG_DWORD 1 or 0, or <true/>/<false/>), got %s", describePolicy(v))
	}
	return nil, false, errors.New("unsupported policy kind")
}

func describePolicy(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []string:
		return fmt.Sprintf("a list of %d values", len(x))
	case int64:
		return "the number " + strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a value of type %T", v)
}

// nest turns "a.b" and v into {"a": {"b": v}}.
func nest(key string, v any) any {
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		v = map[string]any{parts[i]: v}
	}
	return v
}

// PolicyFile is a JSON policy file in config.json's schema (Linux:
// /etc/cardagent/policy.json). A missing file is no policy.
type PolicyFile string

// ReadPolicy implements PolicySource.
func (f PolicyFile) ReadPolicy() (*Policy, error) {
	data, err := readFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := checkTrusted("IT policy", string(f), policyOwners); err != nil {
		return nil, err
	}
	return &Policy{Location: string(f), JSON: data}, nil
}

// RegistryReader lists the values of a registry key (HKLM); ok is false
// when the key does not exist. REG_SZ and REG_EXPAND_SZ come back as
// string, REG_MULTI_SZ as []string, REG_DWORD and REG_QWORD as int64.
type RegistryReader interface {
	ReadValues(key string) (values map[string]any, ok bool, err error)
}

// RegistryPolicy reads the policy from the values of a registry key.
type RegistryPolicy struct {
	Key    string // under HKEY_LOCAL_MACHINE
	Reader RegistryReader
}

// ReadPolicy implements PolicySource.
func (r RegistryPolicy) ReadPolicy() (*Policy, error) {
	vals, ok, err := r.Reader.ReadValues(r.Key)
	if err != nil {
		return nil, fmt.Errorf(`HKLM\%s: %w`, r.Key, err)
	}
	if !ok || len(vals) == 0 {
		return nil, nil
	}
	loc := `HKLM\` + r.Key
	p := &Policy{Location: loc}
	for _, name := range sortedKeys(vals) {
		if name == "" {
			continue // the key's default value
		}
		p.Values = append(p.Values, PolicyValue{Name: name, Value: vals[name], Source: loc + `\` + name})
	}
	return p, nil
}

// ManagedPreferences reads the policy from a macOS managed preferences
// property list (an MDM configuration profile's payload of type
// org.cardagent.agent). Binary property lists are converted with plutil.
type ManagedPreferences struct {
	Path string
	// Convert turns a binary property list into XML; nil runs
	// /usr/bin/plutil -convert xml1 -o - PATH.
	Convert func(path string) ([]byte, error)
}

// ReadPolicy implements PolicySource.
func (m ManagedPreferences) ReadPolicy() (*Policy, error) {
	data, err := readFile(m.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := checkTrusted("IT policy", m.Path, policyOwners); err != nil {
		return nil, err
	}
	v, err := plist.Parse(data)
	if errors.Is(err, plist.ErrBinary) {
		conv := m.Convert
		if conv == nil {
			conv = plutil
		}
		if data, err = conv(m.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		v, err = plist.Parse(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a dictionary at the top", m.Path)
	}
	p := &Policy{Location: m.Path}
	for _, name := range sortedKeys(dict) {
		if strings.HasPrefix(name, "Payload") {
			continue // profile bookkeeping, not settings
		}
		val := dict[name]
		if list, ok := val.([]any); ok {
			ss := make([]string, 0, len(list))
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return nil, &Error{Source: m.Path + ": " + name, Msg: "want a list of strings"}
				}
				ss = append(ss, s)
			}
			val = ss
		}
		p.Values = append(p.Values, PolicyValue{Name: name, Value: val, Source: m.Path + ": " + name})
	}
	if len(p.Values) == 0 {
		return nil, nil
	}
	return p, nil
}

func plutil(path string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("/usr/bin/plutil", "-convert", "xml1", "-o", "-", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("plutil: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
