package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if got, want := c.Listen.Ports(), []int{43800, 43801, 43802, 43803, 43804, 43805, 43806, 43807, 43808, 43809}; !slices.Equal(got, want) {
		t.Errorf("Ports() = %v, want %v", got, want)
	}
	if c.Environment != "live" {
		t.Errorf("Environment = %q, want live", c.Environment)
	}
	if got := c.AllowedOrigins(); len(got) != 0 {
		t.Errorf("AllowedOrigins() = %v, want none by default", got)
	}
	for _, name := range []string{"live", "training", "integration"} {
		if e, ok := c.Environments[name]; !ok || len(e.Origins) != 0 || e.RenewalURL != "" {
			t.Errorf("built-in environment %s = %+v (present %v), want present and empty", name, e, ok)
		}
	}
	if got := c.Environments["development"].Origins; !slices.Equal(got, []string{"https://localhost:8443"}) {
		t.Errorf("development origins = %v", got)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "every page will be refused") {
		t.Errorf("Warnings() = %q, want one saying every page is refused", w)
	}
	if c.Prompt.Timeout() != time.Minute || c.Limits.RequestTimeout() != 2*time.Minute || c.Limits.HandshakeTimeout() != 10*time.Second {
		t.Errorf("durations: prompt %v request %v handshake %v", c.Prompt.Timeout(), c.Limits.RequestTimeout(), c.Limits.HandshakeTimeout())
	}
	if c.PIN.Policy != PINAlways || c.PIN.CacheWindow() != 0 || !c.PIN.DigitsOnly || c.PIN.MinLength != 6 || c.PIN.MaxLength != 8 {
		t.Errorf("PIN policy = %+v", c.PIN)
	}
	if got := c.PKCS11.CardKinds(); !slices.Equal(got, []pcsc.Kind{pcsc.KindSeries8}) {
		t.Errorf("CardKinds() = %v", got)
	}
	if c.Limits.MaxConnections != 64 || c.Limits.MaxMessageBytes != 16384 || c.Limits.PromptsPerMinutePerOrigin != 6 {
		t.Errorf("limits = %+v", c.Limits)
	}
	if c.Log != (Logging{Level: "info", Format: "json"}) {
		t.Errorf("log = %+v", c.Log)
	}
	if s := c.Source("listen.port"); s != SourceDefault {
		t.Errorf("Source(listen.port) = %q, want default", s)
	}
	// Default returns a fresh value each time: changing one must not change the next.
	c.Environments["live"] = Environment{Origins: []string{"https://x.example"}}
	if len(Default().Environments["live"].Origins) != 0 {
		t.Error("Default() shares its map between calls")
	}
}

func TestDefaultPath(t *testing.T) {
	if p := DefaultPath(); !filepath.IsAbs(p) || filepath.Base(p) != "config.json" {
		t.Errorf("DefaultPath() = %q", p)
	}
}

func TestNormalizeOrigin(t *testing.T) {
	good := []struct{ in, want string }{
		{"https://signin.example.org", "https://signin.example.org"},
		{"https://signin.example.org/", "https://signin.example.org"},
		{"https://signin.example.org:443", "https://signin.example.org"},
		{"https://signin.example.org:8443", "https://signin.example.org:8443"},
		{"https://signin.example.org:08443", "https://signin.example.org:8443"},
		{"https://localhost:8443", "https://localhost:8443"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://localhost:80", "http://localhost"},
		{"http://127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"http://[::1]:3000", "http://[::1]:3000"},
		{"http://[0:0:0:0:0:0:0:1]:3000", "http://[::1]:3000"},
		{"https://[2001:DB8::1]", "https://[2001:db8::1]"},
		{"https://10.1.2.3", "https://10.1.2.3"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
		{"https://a_b.example", "https://a_b.example"},
		{"https://a", "https://a"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeOrigin(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			again, err := NormalizeOrigin(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
			}
		})
	}
	bad := []struct{ in, want string }{
		{"", "empty"},
		{"signin.example.org", `want "https://"`},
		{"https//signin.example.org", `want "https://"`},
		{"ftp://signin.example.org", `scheme must be "https"`},
		{"HTTPS://signin.example.org", "lower case"},
		{"https://SignIn.example.org", "lower case"},
		{"http://signin.example.org", "plain http"},
		{"http://127.0.0.2", "plain http"},
		{"http://localhost.example.org", "plain http"},
		{"https://*.example.org", "wildcard"},
		{"https://signin.example.org/login", "no path"},
		{"https://signin.example.org//", "no path"},
		{`https://signin.example.org\`, "no path"},
		{"https://signin.example.org?x=1", "no query"},
		{"https://signin.example.org#top", "no fragment"},
		{"https://user@signin.example.org", "user name"},
		{"https://user:pw@signin.example.org", "user name"},
		{"https://signin.example.org:", "port"},
		{"https://signin.example.org:0", "port"},
		{"https://signin.example.org:65536", "port"},
		{"https://signin.example.org:123456", "port"},
		{"https://signin.example.org:-1", "port"},
		{"https://signin.example.org:8443:1", "port"},
		{"https://signin.example.org.", "dot at the end"},
		{"https://signin..example.org", "empty label"},
		{"https://.example.org", "empty label"},
		{"https://", "host is missing"},
		{"https://:8443", "host is missing"},
		{"https://bücher.example", "xn--"},
		{"https://sign in.example.org", "spaces"},
		{"https://signin.example.org\n", "control"},
		{"https://sign%69n.example.org", "only letters"},
		{"https://256.1.1.1", "IPv4"},
		{"https://127.1", "IPv4"},
		{"https://010.1.1.1", "IPv4"},
		{"https://example.123", "cannot be a number"},
		{"https://[::1", "closing ']'"},
		{"https://[fe80::1%25eth0]", "IPv6"},
		{"https://[1.2.3.4]", "IPv6"},
		{"https://[::ffff:1.2.3.4]", "IPv6"},
		{"https://[::1]x", "after the IPv6"},
		{"https://" + strings.Repeat("a", 64) + ".example", "63"},
		{"https://" + strings.Repeat("a.", 127) + "example", "253"},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeOrigin(tc.in)
			if err == nil {
				t.Fatalf("NormalizeOrigin(%q) = %q, want an error about %q", tc.in, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NormalizeOrigin(%q) error %q, want it to mention %q", tc.in, err, tc.want)
			}
		})
	}
}

// validationCase changes a valid config and expects one problem at key.
type validationCase struct {
	name   string
	change func(c *Config)
	key    string
	want   string // in the message
}

func TestValidate(t *testing.T) {
	cases := []validationCase{
		{"port low", func(c *Config) { c.Listen.Port = 80 }, "listen.port", "80 is not allowed: want 1024 to 65535"},
		{"port high", func(c *Config) { c.Listen.Port = 70000 }, "listen.port", "want 1024 to 65535"},
		{"port range zero", func(c *Config) { c.Listen.PortRange = 0 }, "listen.port_range", "want 1 to 100"},
		{"port range big", func(c *Config) { c.Listen.PortRange = 101 }, "listen.port_range", "want 1 to 100"},
		{"port range past 65535", func(c *Config) { c.Listen.Port = 65530 }, "listen.port_range", "past 65535"},
		{"unknown environment", func(c *Config) { c.Environment = "staging" }, "environment", `"development", "integration", "live" or "training"`},
		{"empty environment", func(c *Config) { c.Environment = "" }, "environment", "not one of the environments"},
		{"bad environment name", func(c *Config) {
			c.Environments["Live"] = Environment{}
		}, "environments.Live", "lower-case"},
		{"bad origin", func(c *Config) {
			c.Environments["live"] = Environment{Origins: []string{"https://ok.example", "http://signin.example.org"}}
		}, "environments.live.origins[1]", `"http://signin.example.org" is not allowed: plain http`},
		{"origin not normalised", func(c *Config) {
			c.ExtraOrigins = []string{"https://a.example:443"}
		}, "allowed_origins[0]", `write it as "https://a.example"`},
		{"wildcard extra origin", func(c *Config) { c.ExtraOrigins = []string{"https://*.example.org"} }, "allowed_origins[0]", "wildcard"},
		{"renewal url http", func(c *Config) {
			c.Environments["live"] = Environment{RenewalURL: "http://renew.example.org/"}
		}, "environments.live.renewal_url", "plain http"},
		{"renewal url relative", func(c *Config) {
			c.Environments["live"] = Environment{RenewalURL: "/renew"}
		}, "environments.live.renewal_url", "absolute URL"},
		{"renewal url userinfo", func(c *Config) {
			c.Environments["live"] = Environment{RenewalURL: "https://u:p@renew.example.org/"}
		}, "environments.live.renewal_url", "user name"},
		{"renewal url space", func(c *Config) {
			c.Environments["live"] = Environment{RenewalURL: "https://renew.example.org/a b"}
		}, "environments.live.renewal_url", "spaces"},
		{"renewal url mailto", func(c *Config) {
			c.Environments["live"] = Environment{RenewalURL: "mailto:it@example.org"}
		}, "environments.live.renewal_url", "absolute URL"},
		{"backend", func(c *Config) { c.Prompt.Backend = "zenity" }, "prompt.backend", `want "auto", "dialog" or "pinentry"`},
		{"pinentry relative", func(c *Config) { c.Prompt.Pinentry = "pinentry" }, "prompt.pinentry", "absolute path"},
		{"pinentry missing", func(c *Config) { c.Prompt.Backend = BackendPinentry; c.Prompt.Pinentry = "" }, "prompt.pinentry", "needs the path"},
		{"prompt timeout", func(c *Config) { c.Prompt.TimeoutSeconds = 0 }, "prompt.timeout_seconds", "want 5 to 600"},
		{"pin policy", func(c *Config) { c.PIN.Policy = "never" }, "pin.policy", `want "always" or "cache"`},
		{"cache zero", func(c *Config) { c.PIN.Policy = PINCache; c.PIN.CacheSeconds = 0 }, "pin.cache_seconds", "want 1 to 3600"},
		{"cache too long", func(c *Config) { c.PIN.CacheSeconds = 3601 }, "pin.cache_seconds", "want 0 to 3600"},
		{"min length", func(c *Config) { c.PIN.MinLength = 0 }, "pin.min_length", "want 1 to 16"},
		{"max below min", func(c *Config) { c.PIN.MaxLength = 5 }, "pin.max_length", "want pin.min_length (6) to 16"},
		{"max too long", func(c *Config) { c.PIN.MaxLength = 17 }, "pin.max_length", "to 16"},
		{"max connections", func(c *Config) { c.Limits.MaxConnections = 0 }, "limits.max_connections", "want 1 to 4096"},
		{"message bytes", func(c *Config) { c.Limits.MaxMessageBytes = 100 }, "limits.max_message_bytes", "want 1024 to 1048576"},
		{"prompts per minute", func(c *Config) { c.Limits.PromptsPerMinutePerOrigin = 61 }, "limits.prompts_per_minute_per_origin", "want 1 to 60"},
		{"handshake", func(c *Config) { c.Limits.HandshakeTimeoutSeconds = 0 }, "limits.handshake_timeout_seconds", "want 1 to 60"},
		{"request timeout", func(c *Config) { c.Limits.RequestTimeoutSeconds = 4000 }, "limits.request_timeout_seconds", "want 5 to 3600"},
		{"request shorter than prompt", func(c *Config) { c.Limits.RequestTimeoutSeconds = 30 }, "limits.request_timeout_seconds", "at least prompt.timeout_seconds (60)"},
		{"pkcs11 relative", func(c *Config) { c.PKCS11.Module = "opensc-pkcs11.so" }, "pkcs11.module", "absolute path"},
		{"pkcs11 kind", func(c *Config) { c.PKCS11.Kinds = []string{"series8", "series4"} }, "pkcs11.kinds[1]", `want "series8" or "piv"`},
		{"pkcs11 kind twice", func(c *Config) { c.PKCS11.Kinds = []string{"piv", "piv"} }, "pkcs11.kinds[1]", "listed twice"},
		{"pkcs11 no kinds", func(c *Config) { c.PKCS11.Kinds = nil }, "pkcs11.kinds", "at least one"},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level", `want "debug", "info", "warn" or "error"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", `want "json" or "console"`},
		{"removal", func(c *Config) { c.Session.Removal = "logoff" }, "session.removal", `want "none", "notify" or "lock"`},
		{"removal case", func(c *Config) { c.Session.Removal = "Lock" }, "session.removal", `want "none", "notify" or "lock"`},
		{"grace negative", func(c *Config) { c.Session.RemovalGraceSeconds = -1 }, "session.removal_grace_seconds", "want 0 to 60"},
		{"grace long", func(c *Config) { c.Session.RemovalGraceSeconds = 61 }, "session.removal_grace_seconds", "want 0 to 60"},
		{"lock command relative", func(c *Config) { c.Session.LockCommand = []string{"xdg-screensaver", "lock"} }, "session.lock_command[0]", "absolute path"},
		{"lock command empty arg", func(c *Config) { c.Session.LockCommand = []string{"/usr/bin/xdg-screensaver", ""} }, "session.lock_command[1]", "cannot be empty"},
		{"lock command NUL", func(c *Config) { c.Session.LockCommand = []string{"/bin/sh", "-c\x00x"} }, "session.lock_command[1]", "NUL"},
		{"lock command long", func(c *Config) { c.Session.LockCommand = make([]string, MaxLockCommandArgs+1) }, "session.lock_command", "at most 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if ce.Key != tc.key || !strings.Contains(ce.Msg, tc.want) {
				t.Fatalf("error key %q msg %q; want key %q and a message containing %q", ce.Key, ce.Msg, tc.key, tc.want)
			}
		})
	}
	t.Run("several problems reported together", func(t *testing.T) {
		c := Default()
		c.Listen.Port = 1
		c.Log.Level = "loud"
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "listen.port") || !strings.Contains(err.Error(), "log.level") {
			t.Fatalf("Validate() = %v, want both problems", err)
		}
	})
	t.Run("good values", func(t *testing.T) {
		c := Default()
		c.Environments["live"] = Environment{Origins: []string{"https://signin.example.org"}, RenewalURL: "https://renew.example.org/path?x=1"}
		c.Environments["test-2"] = Environment{Origins: []string{"http://127.0.0.1:3000"}}
		c.ExtraOrigins = []string{"https://[2001:db8::1]:8443"}
		c.Prompt = Prompt{Backend: BackendPinentry, Pinentry: DefaultPath(), TimeoutSeconds: 600}
		c.PIN = PINPolicy{Policy: PINCache, CacheSeconds: 3600, MinLength: 4, MaxLength: 16}
		c.Limits.RequestTimeoutSeconds = 600
		c.PKCS11 = PKCS11{Module: DefaultPath(), Kinds: []string{"series8", "piv"}}
		c.Log = Logging{Level: "debug", Format: "console"}
		c.Session = Session{Removal: RemovalLock, RemovalGraceSeconds: 0, LockCommand: []string{"/usr/bin/xdg-screensaver", "lock"}}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate() = %v", err)
		}
		if got, want := c.AllowedOrigins(), []string{"https://signin.example.org", "https://[2001:db8::1]:8443"}; !slices.Equal(got, want) {
			t.Errorf("AllowedOrigins() = %v, want %v", got, want)
		}
		if c.RenewalURL() != "https://renew.example.org/path?x=1" {
			t.Errorf("RenewalURL() = %q", c.RenewalURL())
		}
		if c.PIN.CacheWindow() != time.Hour {
			t.Errorf("CacheWindow() = %v", c.PIN.CacheWindow())
		}
		for _, r := range []string{RemovalNone, RemovalNotify, RemovalLock} {
			c.Session = Session{Removal: r, RemovalGraceSeconds: 60, LockCommand: []string{}}
			if err := c.Validate(); err != nil {
				t.Errorf("removal %q: %v", r, err)
			}
		}
		if c.Session.RemovalGrace() != time.Minute {
			t.Errorf("RemovalGrace() = %v", c.Session.RemovalGrace())
		}
	})
}

// TestSessionFromFile: the removal policy from a file, its defaults, and the
// warning for a lock command that is never run.
func TestSessionFromFile(t *testing.T) {
	c := Default()
	if c.Session.Removal != RemovalNone || c.Session.RemovalGraceSeconds != 5 || c.Session.LockCommand == nil || len(c.Session.LockCommand) != 0 {
		t.Errorf("default session %+v, want none, 5 s, no command", c.Session)
	}
	c, err := Parse([]byte(`{"session": {"removal": "lock", "lock_command": ["/usr/bin/loginctl", "lock-session"]}}`), "f.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.Removal != RemovalLock || c.Session.RemovalGraceSeconds != 5 || !slices.Equal(c.Session.LockCommand, []string{"/usr/bin/loginctl", "lock-session"}) {
		t.Errorf("session %+v", c.Session)
	}
	if c.Source("session.lock_command") != "f.json" || c.Source("session.removal_grace_seconds") != SourceDefault {
		t.Errorf("sources %q %q", c.Source("session.lock_command"), c.Source("session.removal_grace_seconds"))
	}
	if slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, "lock_command") }) {
		t.Errorf("warning with removal lock: %q", c.Warnings())
	}
	c, err = Parse([]byte(`{"session": {"removal": "notify", "lock_command": ["/bin/true"]}}`), "f.json")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, "lock_command") && strings.Contains(w, "never run") }) {
		t.Errorf("no warning for a lock command that is never run: %q", c.Warnings())
	}
	if _, err := Parse([]byte(`{"session": {"lock_command": "/bin/true"}}`), "f.json"); err == nil || !strings.Contains(err.Error(), "want a list") {
		t.Errorf("lock_command as a string: %v", err)
	}
	// A clone does not share the command with the original.
	d := c.clone()
	d.Session.LockCommand[0] = "/changed"
	if c.Session.LockCommand[0] != "/bin/true" {
		t.Error("clone shares session.lock_command")
	}
}

func TestMergeRejects(t *testing.T) {
	cases := []struct {
		name, in        string
		line, col       int
		key, want       string
		wantNotContains string
	}{
		{"unknown top-level key", `{"listen": {"port": 43800}, "origins": []}`, 1, 29, "origins", `unknown key "origins"`, ""},
		{"unknown nested key", "{\n  \"limits\": {\n    \"max_conections\": 10\n  }\n}", 3, 5, "limits.max_conections", `did you mean "max_connections"?`, ""},
		{"unknown key in environment", `{"environments": {"live": {"origin": []}}}`, 1, 28, "environments.live.origin", `did you mean "origins"?`, ""},
		{"wrong case", `{"Listen": {}}`, 1, 2, "Listen", `did you mean "listen"?`, ""},
		{"wrong case nested", `{"listen": {"Port": 1}}`, 1, 13, "listen.Port", `did you mean "port"?`, ""},
		{"key twice", `{"listen": {"port": 43800, "port": 43900}}`, 1, 28, "listen.port", "given twice", ""},
		{"environment twice", `{"environments": {"live": {}, "live": {}}}`, 1, 31, "environments.live", "given twice", ""},
		{"null", `{"environment": null}`, 1, 17, "environment", "null is not allowed", ""},
		{"null list", `{"allowed_origins": null}`, 1, 21, "allowed_origins", "null is not allowed", ""},
		{"string for number", `{"listen": {"port": "43800"}}`, 1, 21, "listen.port", `want a whole number, got the string "43800"`, ""},
		{"float", `{"listen": {"port": 43800.5}}`, 1, 21, "listen.port", "want a whole number, got 43800.5", ""},
		{"exponent", `{"listen": {"port": 4e4}}`, 1, 21, "listen.port", "want a whole number", ""},
		{"huge number", `{"listen": {"port": 99999999999999999999999}}`, 1, 21, "listen.port", "want a whole number", ""},
		{"number for string", `{"environment": 1}`, 1, 17, "environment", "want a string", ""},
		{"string for bool", `{"pin": {"digits_only": "yes"}}`, 1, 25, "pin.digits_only", "want true or false", ""},
		{"object for list", `{"allowed_origins": {"a": 1}}`, 1, 21, "allowed_origins", "want a list", ""},
		{"list for object", `{"listen": [1]}`, 1, 12, "listen", "want an object", ""},
		{"number in list", `{"allowed_origins": ["https://a.example", 2]}`, 1, 43, "allowed_origins[1]", "want a string", ""},
		{"top level list", `[]`, 1, 1, "", "want an object", ""},
		{"top level string", `"x"`, 1, 1, "", "want an object", ""},
		{"syntax: missing comma", "{\n  \"listen\": {\"port\": 1}\n  \"environment\": \"live\"\n}", 3, 3, "", "not valid JSON", ""},
		{"syntax: trailing comma", "{\"environment\": \"live\",\n}", 2, 1, "", "not valid JSON", ""},
		{"syntax: comment", "{\n  // the port\n  \"listen\": {}\n}", 2, 3, "", "JSON has no comments", ""},
		{"syntax: single quotes", `{'listen': {}}`, 1, 2, "", "double quotes", ""},
		{"syntax: truncated", `{"listen": {"port": 1}`, 1, 23, "", "ends too early", ""},
		{"trailing data", `{} {}`, 1, 4, "", "after the end", ""},
		{"UTF-16", "\xff\xfe{\x00}\x00", 0, 0, "", "UTF-16", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(Default(), []byte(tc.in), "test.json")
			if err == nil {
				t.Fatal("Merge() = nil error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if ce.Source != "test.json" || ce.Key != tc.key || ce.Line != tc.line || ce.Column != tc.col || !strings.Contains(ce.Msg, tc.want) {
				t.Fatalf("got %q (key %q at %d:%d); want key %q at %d:%d and message containing %q",
					err, ce.Key, ce.Line, ce.Column, tc.key, tc.line, tc.col, tc.want)
			}
		})
	}
}

func TestMergeLayers(t *testing.T) {
	base := Default()
	system := `{
		"listen": {"port": 44000},
		"environment": "training",
		"environments": {
			"live": {"origins": ["https://signin.example.org:443/"], "renewal_url": "https://renew.example.org/"},
			"training": {"origins": ["https://signin.training.example.org"]}
		},
		"allowed_origins": ["https://portal.example.org"]
	}`
	c, err := Merge(base, []byte(system), "/etc/cardagent/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(base, Default()) {
		t.Error("Merge modified its base")
	}
	if c.Listen.Port != 44000 || c.Listen.PortRange != 10 {
		t.Errorf("listen = %+v, want port from the file and range from the defaults", c.Listen)
	}
	if got := c.Environments["live"].Origins; !slices.Equal(got, []string{"https://signin.example.org"}) {
		t.Errorf("live origins = %v, want normalised", got)
	}
	if _, ok := c.Environments["development"]; !ok {
		t.Error("built-in development environment lost by a file that does not mention it")
	}
	if got, want := c.AllowedOrigins(), []string{"https://signin.training.example.org", "https://portal.example.org"}; !slices.Equal(got, want) {
		t.Errorf("AllowedOrigins() = %v, want %v", got, want)
	}
	if c.RenewalURL() != "" {
		t.Errorf("RenewalURL() = %q, want none for training", c.RenewalURL())
	}

	// A second layer replaces a whole environment and a whole list.
	policy := `{"environments": {"training": {"renewal_url": "https://renew.training.example.org/"}}, "allowed_origins": [], "pin": {"policy": "cache"}}`
	c2, err := Merge(c, []byte(policy), "policy")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c2.AllowedOrigins()) != 0 {
		t.Errorf("AllowedOrigins() = %v, want none (environment and list replaced)", c2.AllowedOrigins())
	}
	if c2.RenewalURL() != "https://renew.training.example.org/" || c2.PIN.CacheSeconds != 300 {
		t.Errorf("renewal %q cache %d", c2.RenewalURL(), c2.PIN.CacheSeconds)
	}
	if len(c.AllowedOrigins()) != 2 {
		t.Error("second Merge modified the first layer's result")
	}
	sources := map[string]string{
		"listen.port":                  "/etc/cardagent/config.json",
		"listen.port_range":            SourceDefault,
		"listen":                       SourceDefault,
		"environment":                  "/etc/cardagent/config.json",
		"environments.live":            "/etc/cardagent/config.json",
		"environments.live.origins":    "/etc/cardagent/config.json",
		"environments.training":        "policy",
		"environments.development":     SourceDefault,
		"allowed_origins":              "policy",
		"allowed_origins[0]":           "policy",
		"pin.policy":                   "policy",
		"pin.cache_seconds":            SourceDefault,
		"environments.live.origins[0]": "/etc/cardagent/config.json",
	}
	for key, want := range sources {
		if got := c2.Source(key); got != want {
			t.Errorf("Source(%q) = %q, want %q", key, got, want)
		}
	}
	if got := c2.Sources(); len(got) != 6 {
		t.Errorf("Sources() = %v, want 6 keys", got)
	}

	t.Run("validation names the source", func(t *testing.T) {
		c, err := Merge(Default(), []byte(`{"listen": {"port": 22}}`), "/etc/cardagent/config.json")
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if err == nil || err.Error() != "/etc/cardagent/config.json: listen.port: 22 is not allowed: want 1024 to 65535" {
			t.Fatalf("Validate() = %v", err)
		}
	})
	t.Run("empty overlay", func(t *testing.T) {
		for _, in := range []string{"", " \n", "\xef\xbb\xbf", "{}", "\xef\xbb\xbf{\"listen\":{}}"} {
			c, err := Merge(Default(), []byte(in), "x")
			if err != nil || !reflect.DeepEqual(c.Listen, Default().Listen) || len(c.Sources()) != 0 {
				t.Errorf("Merge(%q) = %+v, %v", in, c.Listen, err)
			}
		}
	})
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("missing explicit file is an error", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.json"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load() = %v, want not-exist", err)
		}
	})
	t.Run("missing default file gives the defaults", func(t *testing.T) {
		c, err := load(filepath.Join(dir, "nope.json"), false)
		if err != nil || !reflect.DeepEqual(c, Default()) {
			t.Fatalf("load() = %+v, %v", c, err)
		}
	})
	t.Run("a default path that is a directory is an error", func(t *testing.T) {
		if _, err := load(dir, false); err == nil {
			t.Fatal("load(dir) = nil error")
		}
	})
	t.Run("valid file", func(t *testing.T) {
		p := write("ok.json", `{"environment": "development", "log": {"format": "console"}}`)
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.AllowedOrigins(), []string{"https://localhost:8443"}) || c.Log.Format != "console" || c.Source("log.format") != p {
			t.Fatalf("Load() = %+v", c)
		}
	})
	t.Run("bad value", func(t *testing.T) {
		p := write("bad.json", `{"allowed_origins": ["https://ok.example", "https://*.example"]}`)
		_, err := Load(p)
		want := p + `: allowed_origins[1]: "https://*.example" is not allowed: wildcards are not supported: list each origin`
		if err == nil || err.Error() != want {
			t.Fatalf("Load() = %v\nwant %s", err, want)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		p := write("unknown.json", "{\n  \"prompt\": {\"backnd\": \"auto\"}\n}\n")
		_, err := Load(p)
		if err == nil || !strings.HasPrefix(err.Error(), p+`:2:14: prompt.backnd: unknown key "backnd" (did you mean "backend"?)`) {
			t.Fatalf("Load() = %v", err)
		}
	})
	t.Run("writable by others", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permissions")
		}
		p := write("open.json", `{}`)
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if !errors.Is(err, ErrUntrustedFile) || !strings.Contains(err.Error(), "chmod go-w") {
			t.Fatalf("Load() = %v, want it refused with the fix", err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err != nil {
			t.Fatalf("Load() of a 0644 file: %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		p := write("big.json", "{}"+strings.Repeat(" ", MaxFileSize))
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("Load() = %v", err)
		}
	})
}

// TestDocsExample checks that every JSON example in docs/config.md is a
// valid configuration, and that the docs mention every key.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("no ```json example in docs/config.md")
	}
	for i, b := range blocks {
		c, err := Parse(b[1], "docs example")
		if err != nil {
			t.Errorf("example %d: %v", i, err)
			continue
		}
		if len(c.AllowedOrigins()) == 0 {
			t.Errorf("example %d allows no origin", i)
		}
	}
	for _, key := range allKeys(reflect.TypeFor[Config](), "") {
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/config.md does not document `%s`", key)
		}
	}
}

// allKeys lists the leaf key paths of t (environments as environments.NAME.*).
func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		key := sub(prefix, name)
		switch f.Type.Kind() {
		case reflect.Struct:
			keys = append(keys, allKeys(f.Type, key)...)
		case reflect.Map:
			keys = append(keys, key)
			keys = append(keys, allKeys(f.Type.Elem(), key+".NAME")...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

func TestPINPolicyCheck(t *testing.T) {
	digits := Default().PIN
	letters := digits
	letters.DigitsOnly = false
	letters.MinLength = 4
	fixed := digits
	fixed.MaxLength = 6
	cases := []struct {
		name   string
		policy PINPolicy
		pin    string
		want   string // "" for accepted
	}{
		{"six digits", digits, "123456", ""},
		{"eight digits", digits, "12345678", ""},
		{"empty", digits, "", "no PIN was entered"},
		{"too short", digits, "12345", "the PIN must be 6 to 8 digits"},
		{"too long", digits, "123456789", "the PIN must be 6 to 8 digits"},
		{"letter", digits, "12345a", "the PIN must be 6 to 8 digits (0-9 only)"},
		{"space", digits, "123 456", "0-9 only"},
		{"fixed length", fixed, "1234567", "the PIN must be 6 digits"},
		{"letters allowed", letters, "ab12", ""},
		{"symbols allowed", letters, "a%b!2", ""},
		{"letters too short", letters, "ab1", "the PIN must be 4 to 8 characters"},
		{"letters with space", letters, "ab 12", "without spaces or accents"},
		{"letters with accent", letters, "abé12", "without spaces or accents"},
		{"letters with NUL", letters, "ab\x0012", "without spaces or accents"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check([]byte(tc.pin))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want accepted", err)
				}
				return
			}
			var fe *PINFormatError
			if !errors.As(err, &fe) || !errors.Is(err, pcsc.ErrPINFormat) {
				t.Fatalf("Check() = %v, want a *PINFormatError matching pcsc.ErrPINFormat", err)
			}
			if !strings.Contains(fe.Reason, tc.want) {
				t.Fatalf("Reason = %q, want %q", fe.Reason, tc.want)
			}
			if len(tc.pin) >= 3 && strings.Contains(err.Error(), tc.pin) {
				t.Fatalf("error %q contains the PIN", err)
			}
			if m := fe.UserMessage(); !strings.HasPrefix(m, "The PIN") && !strings.HasPrefix(m, "No PIN") || !strings.HasSuffix(m, ".") {
				t.Fatalf("UserMessage() = %q", m)
			}
		})
	}
	t.Run("marker PIN never in the error", func(t *testing.T) {
		const marker = "MARKER7319"
		err := letters.Check([]byte(marker))
		if err == nil || strings.Contains(err.Error(), marker) {
			t.Fatalf("Check() = %v", err)
		}
	})
}

// TestMarshalRoundTrip: a configuration printed as JSON reads back the same.
func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(b, "printed")
	if err != nil {
		t.Fatal(err)
	}
	c2.sources = nil
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip changed the configuration:\n%+v\n%+v", c, c2)
	}
}
