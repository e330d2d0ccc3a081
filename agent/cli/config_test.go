package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/installer"
)

func configFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const testConfig = `{
  "environment": "live",
  "environments": {
    "live": {"origins": ["https://signin.example.org"]},
    "training": {"origins": ["https://train.example.org"]}
  },
  "listen": {"port": 44000},
  "credential_management": {"enabled": false},
  "session": {"removal": "lock", "lock_command": ["/usr/bin/xdg-screensaver", "lock"]}
}`

func TestConfigShow(t *testing.T) {
	file := configFile(t, testConfig)
	code, out, errs := cliRun(t, "config", "show", "--config", file)
	if code != 0 {
		t.Fatalf("%d %s", code, errs)
	}
	if !strings.Contains(out, "defaults < "+file+" < IT policy") || !strings.Contains(out, `Allowed origins now (environment "live"): https://signin.example.org`) {
		t.Errorf("output:\n%s", out)
	}
	// Rows are KEY VALUE FROM: each names its value and its source.
	rows := map[string][2]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			rows[f[0]] = [2]string{f[1], f[2]}
		}
	}
	for key, want := range map[string][2]string{
		"listen.port":                   {"44000", file},
		"listen.port_range":             {"10", "default"},
		"environments.live.origins":     {`["https://signin.example.org"]`, file},
		"pin.policy":                    {`"always"`, "default"},
		"session.removal":               {`"lock"`, file},
		"session.removal_grace_seconds": {"5", "default"},
		"session.lock_command":          {`["/usr/bin/xdg-screensaver","lock"]`, file},
	} {
		if rows[key] != want {
			t.Errorf("row %s = %v, want %v", key, rows[key], want)
		}
	}
	code, out, _ = cliRun(t, "config", "show", "--json", "--config", file)
	if code != 0 {
		t.Fatal(code)
	}
	var doc struct {
		Config struct {
			Listen struct{ Port int } `json:"listen"`
		} `json:"config"`
		Sources  map[string]string `json:"sources"`
		Origins  []string          `json:"allowed_origins_effective"`
		Warnings []string          `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err, out)
	}
	if doc.Config.Listen.Port != 44000 || doc.Sources["listen.port"] != file || doc.Sources["pin.policy"] != "default" ||
		doc.Sources["environments.live.origins"] != file || len(doc.Origins) != 1 || doc.Warnings == nil {
		t.Errorf("JSON: %+v", doc)
	}
}

func TestConfigShowErrors(t *testing.T) {
	bad := configFile(t, `{"listen": {"prot": 1}}`)
	if code, _, errs := cliRun(t, "config", "show", "--config", bad); code != cli.ExitFailure || !strings.Contains(errs, `did you mean "port"`) {
		t.Errorf("bad file: %d %s", code, errs)
	}
	if code, _, _ := cliRun(t, "config"); code != cli.ExitUsage {
		t.Errorf("config without show: %d", code)
	}
	if code, _, _ := cliRun(t, "config", "show", "--config", filepath.Join(t.TempDir(), "none.json")); code != cli.ExitFailure {
		t.Errorf("missing --config file: %d", code)
	}
}

func TestPolicyGenerate(t *testing.T) {
	file := configFile(t, testConfig)
	for _, format := range installer.PolicyFormats {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "policy")
			if code, _, errs := cliRun(t, "policy", "generate", "--format", format, "--config", file, "--out", out); code != 0 {
				t.Fatalf("%d %s", code, errs)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want, err := installer.BrowserPolicy(format, []string{"https://signin.example.org"}, file+" (environment live)")
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != string(want) {
				t.Errorf("file differs from installer.BrowserPolicy")
			}
		})
	}
	code, out, _ := cliRun(t, "policy", "generate", "--format", "chrome-json", "--config", file, "--all-environments")
	if code != 0 || !strings.Contains(out, "https://train.example.org") || !strings.Contains(out, "https://signin.example.org") || !strings.Contains(out, "https://localhost:8443") {
		t.Errorf("--all-environments: %d %s", code, out)
	}
	// Prescribing pages (signing_origins) reach the agent too: their origins are in the policy.
	rx := configFile(t, `{"environment": "live", "environments": {"live": {"origins": ["https://signin.example.org"], "signing_origins": ["https://rx.example.org"]}}}`)
	code, out, _ = cliRun(t, "policy", "generate", "--format", "chrome-json", "--config", rx)
	if code != 0 || !strings.Contains(out, `"https://signin.example.org","https://rx.example.org"`) {
		t.Errorf("signing origins: %d %s", code, out)
	}
	if code, _, _ := cliRun(t, "policy", "generate", "--format", "plist", "--config", file); code != cli.ExitUsage {
		t.Errorf("unknown format: %d", code)
	}
	if code, _, _ := cliRun(t, "policy"); code != cli.ExitUsage {
		t.Errorf("policy without generate: %d", code)
	}
}

// TestRunRefusesWritableConfig: `cardagent run` and `config show` refuse a
// configuration that other users can write (it sets the allowed origins
// and the PKCS#11 module the agent loads), saying how to fix it; the agent
// does not start.
func TestRunRefusesWritableConfig(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	file := configFile(t, `{"allowed_origins": ["https://attacker.example"], "pkcs11": {"module": "/tmp/evil.so"}}`)
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "show", "--config", file}, {"run", "--config", file}} {
		code, out, errs := cliRun(t, args...)
		if code == 0 || !strings.Contains(errs, "refusing configuration file "+file) || !strings.Contains(errs, "chmod go-w") {
			t.Errorf("%v: exit %d\nstdout %s\nstderr %s", args, code, out, errs)
		}
	}
}
