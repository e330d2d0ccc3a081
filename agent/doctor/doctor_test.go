package doctor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/installer"
	"github.com/cardagent/cardagent/pcsc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Fakes, one per interface.

type scanner struct {
	inv *agent.Inventory
	err error
}

func (s scanner) Scan(context.Context) (*agent.Inventory, error) { return s.inv, s.err }

type prober map[int]doctor.Probe

func (p prober) Probe(_ context.Context, port int, _ string) doctor.Probe { return p[port] }

type policies []doctor.BrowserPolicy

func (p policies) Check([]string) []doctor.BrowserPolicy { return p }

type tray struct {
	ok     bool
	detail string
}

func (t tray) Check(context.Context) (bool, string) { return t.ok, t.detail }

type legacy []string

func (l legacy) Detect(context.Context) []string { return l }

type autostart struct {
	ok  bool
	err error
}

func (a autostart) Installed() (bool, string, error) {
	return a.ok, "/usr/lib/systemd/user/cardagent.service", a.err
}

func goodConfig() (config.Config, error) {
	return config.Parse([]byte(`{"environments": {"live": {"origins": ["https://signin.example.org"], "renewal_url": "https://renew.example.org/", "signing_origins": ["https://rx.example.org"]}}, "session": {"removal": "lock", "lock_command": ["/usr/local/bin/lock-desktop"]}}`), "/etc/cardagent/config.json")
}

type portProber map[int]doctor.PortServiceProbe

func (p portProber) ProbePortService(_ context.Context, port int, _ string) doctor.PortServiceProbe {
	if r, ok := p[port]; ok {
		return r
	}
	return doctor.PortServiceProbe{Free: true}
}

func cert(usage string, daysLeft int) certinfo.Summary {
	return certinfo.Summary{Usage: usage, DaysLeft: daysLeft, Expired: daysLeft < 0, NotAfter: now.AddDate(0, 0, daysLeft)}
}

func card(mod func(*agent.CardReport)) *agent.Inventory {
	c := &agent.CardReport{
		Kind: "piv", Type: "NHS series 9 smartcard (PIV)", Supported: true,
		Holder:       &certinfo.Holder{Name: "Jane SMITH"},
		PIN:          &wire.PINReport{TriesLeft: 3},
		Certificates: []certinfo.Summary{cert("authentication", 400), cert("signature", 400)},
	}
	if mod != nil {
		mod(c)
	}
	return &agent.Inventory{Readers: []agent.ReaderReport{{Name: "Reader 0", Card: c}}}
}

// healthy is a Doctor whose every check passes.
func healthy() *doctor.Doctor {
	return &doctor.Doctor{
		LoadConfig: goodConfig,
		ConfigPath: "/etc/cardagent/config.json",
		Scanner:    scanner{inv: card(nil)},
		Prober:     prober{43801: {Listening: true, Agent: true, Version: "1.2.3"}},
		PortProber: portProber{43487: {Closed: true}, 44213: {Agent: true}},
		Policies:   policies{{Browser: "Google Chrome", Where: "/etc/opt/chrome/policies/managed/cardagent.json", Present: true}},
		Tray:       tray{ok: true, detail: "tray found"},
		Legacy:     legacy(nil),
		Autostart:  autostart{ok: true},
		LockAvailable: func(cmd []string) error {
			if len(cmd) != 1 || cmd[0] != "/usr/local/bin/lock-desktop" {
				return fmt.Errorf("lock command %q", cmd)
			}
			return nil
		},
		Now: func() time.Time { return now },
	}
}

func TestHealthy(t *testing.T) {
	r := healthy().Run(context.Background())
	if !r.OK || len(r.Failed()) != 0 {
		t.Fatalf("failed: %v\n%+v", r.Failed(), r.Results)
	}
	for _, res := range r.Results {
		if res.Status != doctor.OK {
			t.Errorf("%s: %s %s", res.ID, res.Status, res.Message)
		}
	}
	if got := r.Result(doctor.CheckPortService).Message; !strings.Contains(got, "44213") || !strings.Contains(got, "https://rx.example.org") {
		t.Errorf("port service message %q", got)
	}
	if got := r.Result(doctor.CheckAgent).Message; !strings.Contains(got, "1.2.3") || !strings.Contains(got, "43801") {
		t.Errorf("agent message %q", got)
	}
	if r.Schema != doctor.Schema || !r.Time.Equal(now) {
		t.Errorf("schema %d time %v", r.Schema, r.Time)
	}
}

// TestEachProblem covers every problem doctor reports: the check's status,
// words in its message or fix, and whether sign-in is blocked.
func TestEachProblem(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*doctor.Doctor)
		check   string
		status  doctor.Status
		words   string // in Message or Fix
		blocked bool
	}{
		{"config error", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Config{}, errors.New(`/etc/cardagent/config.json:3:5: listen.prot: unknown key "prot"`)
			}
		}, doctor.CheckConfig, doctor.Fail, `unknown key "prot"`, true},
		{"config warning", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Parse([]byte(`{"environment": "development"}`), "c.json")
			}
		}, doctor.CheckConfig, doctor.Warn, "development environment", false},
		{"desktop cannot be locked", func(d *doctor.Doctor) {
			d.LockAvailable = func([]string) error { return errors.New("desktoplock: no such file") }
		}, doctor.CheckRemoval, doctor.Warn, "cannot be locked here: desktoplock: no such file", false},
		{"removal policy none", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Parse([]byte(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}}`), "c.json")
			}
		}, doctor.CheckRemoval, doctor.Info, "ends nothing", false},
		{"removal policy notify", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Parse([]byte(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}, "session": {"removal": "notify", "removal_grace_seconds": 7}}`), "c.json")
			}
		}, doctor.CheckRemoval, doctor.OK, "stays out for 7 s, every page is told", false},
		{"no allowed origin", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) { return config.Default(), nil }
		}, doctor.CheckOrigins, doctor.Fail, "refuses every page", true},
		{"PC/SC service down", func(d *doctor.Doctor) {
			d.Scanner = scanner{err: fmt.Errorf("listing readers: %w", pcsc.ErrServiceUnavailable)}
		}, doctor.CheckPCSC, doctor.Fail, "not running", true},
		{"no reader", func(d *doctor.Doctor) { d.Scanner = scanner{err: pcsc.ErrNoReader} }, doctor.CheckReaders, doctor.Fail, "No smart-card reader", true},
		{"no card", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: &agent.Inventory{Readers: []agent.ReaderReport{{Name: "Reader 0"}}}}
		}, doctor.CheckCard, doctor.Info, "No card is inserted", false},
		{"mute card", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Mute, c.Hint = true, "take it out" })}
		}, doctor.CheckCard, doctor.Fail, "does not answer", true},
		{"unsupported card", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Supported, c.Type = false, "unknown card" })}
		}, doctor.CheckCard, doctor.Fail, "not supported", true},
		{"blocked PIN", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.PIN = &wire.PINReport{TriesLeft: 0, Blocked: true} })}
		}, doctor.CheckCard, doctor.Fail, "Registration Authority", true},
		{"last PIN try", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.PIN = &wire.PINReport{TriesLeft: 1} })}
		}, doctor.CheckCard, doctor.Warn, "1 PIN tries left", false},
		{"card read error", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Error = "card removed" })}
		}, doctor.CheckCard, doctor.Warn, "could not be read completely", false},
		{"no certificate", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Certificates = nil })}
		}, doctor.CheckCertificates, doctor.Fail, "no certificate", true},
		{"expired certificate", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Certificates[0] = cert("authentication", -3) })}
		}, doctor.CheckCertificates, doctor.Fail, "expired", true},
		{"certificate expiring", func(d *doctor.Doctor) {
			d.Scanner = scanner{inv: card(func(c *agent.CardReport) { c.Certificates[1] = cert("signature", 30) })}
		}, doctor.CheckCertificates, doctor.Warn, "https://renew.example.org/", false},
		{"agent not running", func(d *doctor.Doctor) { d.Prober = prober{} }, doctor.CheckAgent, doctor.Fail, "cardagent service start", true},
		{"another user's agent", func(d *doctor.Doctor) {
			d.Prober = prober{43800: {Listening: true, Refused: true}}
		}, doctor.CheckAgent, doctor.Fail, "another user's agent", true},
		{"every port taken", func(d *doctor.Doctor) {
			p := prober{}
			for port := 43800; port < 43810; port++ {
				p[port] = doctor.Probe{Listening: true, Detail: "HTTP 404 from another program"}
			}
			d.Prober = p
		}, doctor.CheckAgent, doctor.Fail, "widen listen.port_range", true},
		{"no agent on the Port Service", func(d *doctor.Doctor) {
			d.PortProber = portProber{43487: {Busy: true}, 44213: {Other: `HTTP 200, server ""`}, 45031: {Closed: true}}
		}, doctor.CheckPortService, doctor.Warn, "43487 held by an outgoing connection for now (the agent keeps trying); 44213 another program", false},
		{"Port Service fault", func(d *doctor.Doctor) {
			d.PortProber = portProber{43487: {Agent: true, Fault: "cannot show a PIN prompt"}}
		}, doctor.CheckPortService, doctor.Warn, "cannot show a PIN prompt", false},
		{"no signing origin", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Parse([]byte(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}}`), "c.json")
			}
			d.PortProber = portProber{43487: {Refused: true}}
		}, doctor.CheckPortService, doctor.Info, "signing_origins", false},
		{"Port Service off", func(d *doctor.Doctor) {
			d.LoadConfig = func() (config.Config, error) {
				return config.Parse([]byte(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}, "credential_management": {"enabled": false}}`), "c.json")
			}
		}, doctor.CheckPortService, doctor.Info, "turned off", false},
		{"no autostart", func(d *doctor.Doctor) { d.Autostart = autostart{} }, doctor.CheckAutostart, doctor.Warn, "not set to start", false},
		{"autostart unreadable", func(d *doctor.Doctor) { d.Autostart = autostart{err: errors.New("access denied")} }, doctor.CheckAutostart, doctor.Warn, "access denied", false},
		{"no browser policy", func(d *doctor.Doctor) {
			d.Policies = policies{{Browser: "Google Chrome", Where: "x"}}
		}, doctor.CheckBrowserPolicy, doctor.Warn, "local network", false},
		{"browser policy lacks an origin", func(d *doctor.Doctor) {
			d.Policies = policies{{Browser: "Microsoft Edge", Where: `HKLM\SOFTWARE\Policies\Microsoft\Edge`, Present: true, Missing: []string{"https://signin.example.org"}}}
		}, doctor.CheckBrowserPolicy, doctor.Warn, "lacks https://signin.example.org", false},
		{"no tray host", func(d *doctor.Doctor) { d.Tray = tray{detail: "No graphical session here."} }, doctor.CheckTray, doctor.Warn, "No graphical session", false},
		{"legacy client", func(d *doctor.Doctor) { d.Legacy = legacy{"NHS Credential Management listening on port 43485"} }, doctor.CheckLegacy, doctor.Warn, "43485", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := healthy()
			tt.mod(d)
			r := d.Run(context.Background())
			res := r.Result(tt.check)
			if res.Status != tt.status {
				t.Fatalf("%s: status %q, want %q (%s)", tt.check, res.Status, tt.status, res.Message)
			}
			if !strings.Contains(res.Message+" "+res.Fix, tt.words) {
				t.Errorf("%s: %q / %q lacks %q", tt.check, res.Message, res.Fix, tt.words)
			}
			if r.OK == tt.blocked {
				t.Errorf("report OK=%v, want %v (failed: %v)", r.OK, !tt.blocked, r.Failed())
			}
			if tt.status == doctor.Fail && res.Fix == "" && tt.check != doctor.CheckOrigins {
				t.Errorf("%s fails with no fix", tt.check)
			}
		})
	}
}

func TestHTTPProber(t *testing.T) {
	handler := func(code int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Origin") != "https://signin.example.org" || r.URL.Path != "/cardagent/v1/info" {
				w.WriteHeader(http.StatusTeapot)
				return
			}
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}
	}
	tests := []struct {
		name string
		h    http.HandlerFunc
		want doctor.Probe
	}{
		{"agent", handler(200, `{"name":"cardagent","version":"1.2.3","protocol":1}`), doctor.Probe{Listening: true, Agent: true, Version: "1.2.3"}},
		{"refused", handler(403, `{"error":{"code":"not_allowed"}}`), doctor.Probe{Listening: true, Refused: true}},
		{"other program", handler(404, `nope`), doctor.Probe{Listening: true, Detail: "HTTP 404 from another program"}},
		{"other JSON", handler(200, `{"name":"something"}`), doctor.Probe{Listening: true, Detail: "HTTP 200 from another program"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			port, _ := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
			got := doctor.HTTPProber{}.Probe(context.Background(), port, "https://signin.example.org")
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// A closed port: nothing listens.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if got := (doctor.HTTPProber{}).Probe(context.Background(), port, "https://signin.example.org"); got.Listening {
		t.Errorf("closed port: %+v", got)
	}
}

func TestFilePoliciesReadWhatPolicyGenerateWrites(t *testing.T) {
	root := t.TempDir()
	origins := []string{"https://signin.example.org", "https://portal.example.org:8443"}
	fp := doctor.FilePolicies{Root: root, Files: installer.LinuxPolicyFiles}
	for _, s := range fp.Check(origins) {
		if s.Present {
			t.Fatalf("%s present in an empty root", s.Browser)
		}
	}
	for _, pf := range installer.LinuxPolicyFiles {
		data, err := installer.BrowserPolicy(pf.Format, origins[:1], "test")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, pf.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range fp.Check(origins[:1]) {
		if !s.Present || len(s.Missing) > 0 {
			t.Errorf("%s: %+v", s.Browser, s)
		}
	}
	for _, s := range fp.Check(origins) {
		if !slices.Equal(s.Missing, origins[1:]) {
			t.Errorf("%s: missing %v, want %v", s.Browser, s.Missing, origins[1:])
		}
	}
	// A file that is not a policy does not count.
	os.WriteFile(filepath.Join(root, installer.LinuxPolicyFiles[0].Path), []byte(`{"Other": 1}`), 0o644)
	if s := fp.Check(origins)[0]; s.Present {
		t.Errorf("unrelated JSON counted as a policy: %+v", s)
	}
}

type fakeLister map[string][]string

func (f fakeLister) Strings(key string) ([]string, bool, error) {
	v, ok := f[key]
	return v, ok, nil
}

func TestRegistryPolicies(t *testing.T) {
	rp := doctor.RegistryPolicies{Registry: fakeLister{
		`SOFTWARE\Policies\Google\Chrome\LocalNetworkAccessAllowedForUrls`: {"https://signin.example.org"},
	}}
	got := rp.Check([]string{"https://signin.example.org", "https://b.example.org"})
	if len(got) != 2 || !got[0].Present || !slices.Equal(got[0].Missing, []string{"https://b.example.org"}) || got[1].Present {
		t.Errorf("%+v", got)
	}
}

func TestManagedPreferencePolicies(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "com.google.Chrome.plist"), []byte(`<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>LoopbackNetworkAllowedForUrls</key><array><string>https://signin.example.org</string></array></dict></plist>`), 0o644)
	got := doctor.ManagedPreferencePolicies{Dir: dir}.Check([]string{"https://signin.example.org"})
	if !got[0].Present || len(got[0].Missing) != 0 || got[1].Present {
		t.Errorf("%+v", got)
	}
}

func TestDesktopTray(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	owner := func(ok bool, err error) func(context.Context, string) (bool, error) {
		return func(_ context.Context, name string) (bool, error) {
			if name != doctor.StatusNotifierWatcher {
				t.Errorf("asked for %q", name)
			}
			return ok, err
		}
	}
	tests := []struct {
		name  string
		tray  doctor.DesktopTray
		ok    bool
		words string
	}{
		{"no display", doctor.DesktopTray{Getenv: env(nil), HasOwner: owner(true, nil)}, false, "No graphical session"},
		{"no watcher", doctor.DesktopTray{Getenv: env(map[string]string{"DISPLAY": ":0"}), HasOwner: owner(false, nil)}, false, "no tray host"},
		{"bus error", doctor.DesktopTray{Getenv: env(map[string]string{"WAYLAND_DISPLAY": "wayland-0"}), HasOwner: owner(false, errors.New("no bus"))}, false, "no bus"},
		{"tray", doctor.DesktopTray{Getenv: env(map[string]string{"DISPLAY": ":0"}), HasOwner: owner(true, nil)}, true, "shows tray icons"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, detail := tt.tray.Check(context.Background())
			if ok != tt.ok || !strings.Contains(detail, tt.words) {
				t.Errorf("%v %q", ok, detail)
			}
		})
	}
}

func TestPortLegacy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	got := doctor.PortLegacy{
		Ports: map[int]string{port: "old client on " + strconv.Itoa(port), freePort: "never"},
		Extra: func() []string { return []string{"NHS Identity Agent 2.4.6 (installed)"} },
	}.Detect(context.Background())
	want := []string{"NHS Identity Agent 2.4.6 (installed)", "old client on " + strconv.Itoa(port)}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFileAutostartMatchesServiceInstall(t *testing.T) {
	root := t.TempDir()
	fa := doctor.FileAutostart{Root: root, Paths: []string{installer.LinuxUnitDir + "/" + installer.LinuxUnit, installer.LinuxWantsDir + "/" + installer.LinuxUnit}}
	if ok, _, err := fa.Installed(); ok || err != nil {
		t.Fatalf("empty root: %v %v", ok, err)
	}
	a, err := installer.AutostartFor("linux", installer.LinuxBinary, installer.ByCommand)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Install(root, nil, false); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := fa.Installed(); !ok || err != nil {
		t.Fatalf("after install: %v %v", ok, err)
	}
}
