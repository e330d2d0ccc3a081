package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/config"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeRegistry is a RegistryReader over a map of keys to values.
type fakeRegistry struct {
	keys map[string]map[string]any
	err  error
}

func (f fakeRegistry) ReadValues(key string) (map[string]any, bool, error) {
	if f.err != nil {
		return nil, false, f.err
	}
	v, ok := f.keys[key]
	return v, ok, nil
}

const policyKey = `Software\Policies\cardagent`

func registry(vals map[string]any) config.PolicySource {
	return config.RegistryPolicy{Key: policyKey, Reader: fakeRegistry{keys: map[string]map[string]any{policyKey: vals}}}
}

const userFile = `{
  "environment": "training",
  "environments": {"training": {"origins": ["https://train.example.org"]}},
  "allowed_origins": ["https://file.example.org"],
  "listen": {"port": 44000},
  "pin": {"policy": "cache", "cache_seconds": 60}
}`

func TestLayeringPrecedence(t *testing.T) {
	file := writeFile(t, "config.json", userFile)
	pol := writeFile(t, "policy.json", `{"allowed_origins": ["https://policy.example.org"], "pin": {"policy": "always"}}`)

	c, err := config.LoadLayered(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AllowedOrigins(); !slices.Equal(got, []string{"https://train.example.org", "https://file.example.org"}) {
		t.Fatalf("file only: origins %v", got)
	}

	// A policy file over the file: the policy wins where both set a key.
	c, err = config.LoadLayered(file, config.PolicyFile(pol))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, source string }{
		{"listen.port", file},                       // only the file sets it
		{"listen.port_range", config.SourceDefault}, // nobody sets it
		{"allowed_origins", pol},                    // policy beats the file
		{"pin.policy", pol},
		{"prompt.timeout_seconds", config.SourceDefault},
	}
	for _, tt := range tests {
		if got := c.Source(tt.key); got != tt.source {
			t.Errorf("Source(%q) = %q, want %q", tt.key, got, tt.source)
		}
	}
	if c.Listen.Port != 44000 || c.PIN.Policy != config.PINAlways {
		t.Errorf("port %d pin %q", c.Listen.Port, c.PIN.Policy)
	}
}

func TestPolicyLocksSecuritySettings(t *testing.T) {
	// A file named with --config (not the system file) may tune the port
	// but not the security settings while a policy is in force.
	file := writeFile(t, "mine.json", userFile)
	pol := registry(map[string]any{"AllowedOrigins": "https://policy.example.org"})
	c, err := config.LoadLayered(file, pol)
	if err != nil {
		t.Fatal(err)
	}
	origins := c.AllowedOrigins()
	if slices.Contains(origins, "https://file.example.org") || slices.Contains(origins, "https://train.example.org") {
		t.Errorf("user file's origins survived the policy: %v", origins)
	}
	if !slices.Contains(origins, "https://policy.example.org") {
		t.Errorf("policy origin missing: %v", origins)
	}
	if c.PIN.Policy != config.PINAlways {
		t.Errorf("pin.policy %q from the user file survived", c.PIN.Policy)
	}
	if c.Listen.Port != 44000 || c.Source("listen.port") != file {
		t.Errorf("non-security setting lost: port %d from %q", c.Listen.Port, c.Source("listen.port"))
	}
	if got := c.Source("allowed_origins"); got != `HKLM\`+policyKey+`\AllowedOrigins` {
		t.Errorf("allowed_origins source %q", got)
	}
	if !slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, "IT policy") && strings.Contains(w, "ignored") }) {
		t.Errorf("no warning about the ignored settings: %q", c.Warnings())
	}
	// Nor the removal policy: a user cannot turn off IT's "lock" (or name
	// the program run to lock) with a file of their own.
	sysLock := writeFile(t, "lockuser.json", `{"session": {"removal": "none", "lock_command": ["/tmp/mine"]}}`)
	c2, err := config.LoadLayered(sysLock, registry(map[string]any{"SessionRemoval": "lock"}))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Session.Removal != config.RemovalLock || len(c2.Session.LockCommand) != 0 {
		t.Errorf("session %+v: the user file weakened the policy", c2.Session)
	}
	// Without a policy the same file is taken as it is.
	c, err = config.LoadLayered(file, registry(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.AllowedOrigins(), "https://file.example.org") {
		t.Errorf("no policy: %v", c.AllowedOrigins())
	}
}

func TestRegistryPolicy(t *testing.T) {
	src := func(name string) string { return `HKLM\` + policyKey + `\` + name }
	tests := []struct {
		name    string
		vals    map[string]any
		check   func(t *testing.T, c config.Config)
		wantErr string
	}{
		{
			name: "MSI property: origins separated by spaces, commas, semicolons",
			vals: map[string]any{"AllowedOrigins": "https://a.example.org https://b.example.org;https://c.example.org:8443,https://d.example.org", "Environment": "training"},
			check: func(t *testing.T, c config.Config) {
				want := []string{"https://a.example.org", "https://b.example.org", "https://c.example.org:8443", "https://d.example.org"}
				if !reflect.DeepEqual(c.ExtraOrigins, want) {
					t.Errorf("origins %v", c.ExtraOrigins)
				}
				if c.Environment != "training" || c.Source("environment") != src("Environment") {
					t.Errorf("environment %q from %q", c.Environment, c.Source("environment"))
				}
			},
		},
		{
			name: "REG_MULTI_SZ, REG_DWORD, booleans; value names are case-insensitive",
			vals: map[string]any{"allowedorigins": []string{"https://a.example.org", " "}, "PINPolicy": "cache", "PINCacheSeconds": int64(120), "PINDigitsOnly": int64(0), "Port": int64(43900)},
			check: func(t *testing.T, c config.Config) {
				if !reflect.DeepEqual(c.ExtraOrigins, []string{"https://a.example.org"}) {
					t.Errorf("origins %v", c.ExtraOrigins)
				}
				if c.PIN.Policy != "cache" || c.PIN.CacheSeconds != 120 || c.PIN.DigitsOnly || c.Listen.Port != 43900 {
					t.Errorf("pin %+v port %d", c.PIN, c.Listen.Port)
				}
				if c.Source("pin.cache_seconds") != src("PINCacheSeconds") {
					t.Errorf("source %q", c.Source("pin.cache_seconds"))
				}
			},
		},
		{
			name: "Config holds a JSON document; named values override it",
			vals: map[string]any{
				"Config":      `{"environments": {"live": {"origins": ["https://live.example.org"], "renewal_url": "https://renew.example.org/"}}, "log": {"level": "debug"}}`,
				"Environment": "live",
				"LogLevel":    "warn",
			},
			check: func(t *testing.T, c config.Config) {
				if !slices.Equal(c.AllowedOrigins(), []string{"https://live.example.org"}) || c.RenewalURL() != "https://renew.example.org/" {
					t.Errorf("origins %v renewal %q", c.AllowedOrigins(), c.RenewalURL())
				}
				if c.Log.Level != "warn" || c.Source("log.level") != src("LogLevel") || c.Source("environments.live.origins") != src("Config") {
					t.Errorf("level %q from %q; origins from %q", c.Log.Level, c.Source("log.level"), c.Source("environments.live.origins"))
				}
			},
		},
		{
			name: "empty values are not configured",
			vals: map[string]any{"AllowedOrigins": "", "Environment": "", "Port": ""},
			check: func(t *testing.T, c config.Config) {
				if c.Source("allowed_origins") != config.SourceDefault || c.Environment != "live" || c.Listen.Port != 43800 {
					t.Errorf("empty values applied: %+v", c)
				}
			},
		},
		{
			name: "removal policy: REG_SZ, REG_DWORD and a REG_MULTI_SZ command whose path holds a space",
			vals: map[string]any{"SessionRemoval": "lock", "SessionRemovalGraceSeconds": int64(10), "SessionLockCommand": []string{`/opt/my lock/lock`, "--now"}},
			check: func(t *testing.T, c config.Config) {
				if c.Session.Removal != config.RemovalLock || c.Session.RemovalGraceSeconds != 10 || !slices.Equal(c.Session.LockCommand, []string{`/opt/my lock/lock`, "--now"}) {
					t.Errorf("session %+v", c.Session)
				}
				if c.Source("session.removal") != src("SessionRemoval") || c.Source("session.lock_command") != src("SessionLockCommand") {
					t.Errorf("sources %q %q", c.Source("session.removal"), c.Source("session.lock_command"))
				}
			},
		},
		{
			name: "a lock command as one REG_SZ is the program alone, not split",
			vals: map[string]any{"SessionLockCommand": `/opt/my lock/lock`},
			check: func(t *testing.T, c config.Config) {
				if !slices.Equal(c.Session.LockCommand, []string{`/opt/my lock/lock`}) {
					t.Errorf("command %q", c.Session.LockCommand)
				}
			},
		},
		{name: "bad removal names the registry value", vals: map[string]any{"SessionRemoval": "logoff"}, wantErr: src("SessionRemoval") + ": session.removal"},
		{name: "lock command of the wrong type", vals: map[string]any{"SessionLockCommand": int64(1)}, wantErr: "want a list of text values"},
		{name: "unknown value", vals: map[string]any{"AllowedOrigin": "https://a.example.org"}, wantErr: `unknown policy setting "AllowedOrigin"`},
		{name: "wrong type", vals: map[string]any{"Port": []string{"1", "2"}}, wantErr: "want a whole number"},
		{name: "bad bool", vals: map[string]any{"PINDigitsOnly": int64(7)}, wantErr: "want true or false"},
		{name: "bad origin names the registry value", vals: map[string]any{"AllowedOrigins": "http://evil.example.org"}, wantErr: src("AllowedOrigins") + ": allowed_origins[0]"},
		{name: "bad JSON in Config", vals: map[string]any{"Config": `{"listen": {"prot": 1}}`}, wantErr: `did you mean "port"`},
		{name: "invalid environment", vals: map[string]any{"Environment": "nosuch"}, wantErr: src("Environment") + ": environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.LoadLayered(writeFile(t, "c.json", "{}"), registry(tt.vals))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
	// A registry that cannot be read is an error, not "no policy".
	broken := config.RegistryPolicy{Key: policyKey, Reader: fakeRegistry{err: errors.New("access denied")}}
	if _, err := config.LoadLayered("", broken); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("unreadable registry: %v", err)
	}
}

const managedPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadUUID</key><string>ignored</string>
	<key>AllowedOrigins</key>
	<array><string>https://mac.example.org</string></array>
	<key>PINDigitsOnly</key><false/>
	<key>PINMinLength</key><integer>4</integer>
</dict>
</plist>`

func TestManagedPreferences(t *testing.T) {
	p := writeFile(t, "org.cardagent.agent.plist", managedPlist)
	c, err := config.LoadLayered(writeFile(t, "c.json", "{}"), config.ManagedPreferences{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ExtraOrigins, []string{"https://mac.example.org"}) || c.PIN.DigitsOnly || c.PIN.MinLength != 4 {
		t.Errorf("origins %v pin %+v", c.ExtraOrigins, c.PIN)
	}
	if got := c.Source("pin.min_length"); got != p+": PINMinLength" {
		t.Errorf("source %q", got)
	}

	// A binary plist goes through the converter (plutil on a Mac).
	bin := writeFile(t, "bin.plist", "bplist00....")
	converted := false
	mp := config.ManagedPreferences{Path: bin, Convert: func(path string) ([]byte, error) {
		converted = path == bin
		return []byte(managedPlist), nil
	}}
	if c, err = config.LoadLayered(writeFile(t, "c.json", "{}"), mp); err != nil || !converted || len(c.ExtraOrigins) != 1 {
		t.Errorf("binary: err %v converted %v origins %v", err, converted, c.ExtraOrigins)
	}

	// Missing file: no policy. Broken file: an error.
	if _, err := config.LoadLayered(writeFile(t, "c.json", "{}"), config.ManagedPreferences{Path: filepath.Join(t.TempDir(), "none.plist")}); err != nil {
		t.Errorf("missing: %v", err)
	}
	broken := writeFile(t, "broken.plist", "<plist><dict><key>AllowedOrigins</key><array><integer>1</integer></array></dict></plist>")
	if _, err := config.LoadLayered(writeFile(t, "c.json", "{}"), config.ManagedPreferences{Path: broken}); err == nil || !strings.Contains(err.Error(), "want a list of strings") {
		t.Errorf("broken: %v", err)
	}
}

func TestPolicyFileMissingIsNoPolicy(t *testing.T) {
	p, err := config.PolicyFile(filepath.Join(t.TempDir(), "policy.json")).ReadPolicy()
	if p != nil || err != nil {
		t.Fatalf("%v %v", p, err)
	}
	bad := writeFile(t, "policy.json", `{"allowed_origins": "https://a.example.org"}`)
	if _, err := config.LoadLayered(writeFile(t, "c.json", "{}"), config.PolicyFile(bad)); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad policy file: %v", err)
	}
}

func TestPolicySettingsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatalf("the policy settings are documented in docs/deployment.md: %v", err)
	}
	for _, s := range config.PolicySettings() {
		if !strings.Contains(string(doc), "`"+s[0]+"`") {
			t.Errorf("policy setting %s is not documented in docs/deployment.md", s[0])
		}
	}
}
