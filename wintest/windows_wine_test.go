//go:build wine && linux

package wintest

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/installer"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"

	signinOrigin = "https://signin.wintest.example"
	portalOrigin = "https://portal.wintest.example:8443"
	otherOrigin  = "https://evil.wintest.example"

	// cardPIN is the virtual card's PIN, a marker that must appear in no log.
	cardPIN  = "804417"
	cardUUID = "555253521108"

	hklm      = `HKLM\`
	runKey    = hklm + installer.WindowsRunKey
	policyKey = hklm + installer.WindowsPolicyKey
	uninstall = hklm + `Software\Microsoft\Windows\CurrentVersion\Uninstall\`

	installDir = "Program Files/cardagent"
	exeWin     = `C:\Program Files\cardagent\cardagent.exe`

	// idleWindow is how long idle CPU is measured; idleCPUMax is the most
	// the agent may use in it: a monitor spinning on a non-blocking
	// SCardGetStatusChange burns a whole core (the full window).
	idleWindow = 20 * time.Second
	idleCPUMax = time.Second
)

// builds are the Windows programs and MSIs, as paths inside the root.
type builds struct {
	msi         map[string]string // version -> MSI
	productCode map[string]string // version -> its ProductCode
	scripted    string            // the scripted pinentry (.exe)
	relay       string            // wintest/relay (.exe)
}

// TestWindowsUnderWine installs the MSI in a fresh Wine prefix, runs the
// installed agent against a virtual card through the root's pcscd, and
// upgrades, downgrades and removes it. The steps depend on each other and
// run in order; the first that fails stops the rest.
func TestWindowsUnderWine(t *testing.T) {
	suiteStart := time.Now()
	w := newWineEnv(t)
	b := w.build(t)

	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: cardUUID, Surname: "RANDOM", Forename: "USERQ", DaysLeft: 400},
		func(c *vpiv.Config) { c.PIN = cardPIN })
	if err != nil {
		t.Fatal(err)
	}
	s := &session{w: w, b: b, pki: pki, card: card, vpcdPort: freePortPair(t), apiPort: freePort(t), cmPort: freePort(t)}
	t.Cleanup(s.close)

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"msi-install", s.install},
		{"config-show-policy", s.policy},
		{"cards", s.cards},
		{"autostart-and-signin", s.signin},
		{"credential-management", s.credentialManagement},
		{"card-and-service-events", s.events},
		{"idle-cpu", s.idle},
		{"supervisor", s.supervisor},
		{"msi-upgrade", s.upgrade},
		{"msi-downgrade-refused", s.downgrade},
		{"msi-uninstall", s.uninstall},
	}
	for _, st := range steps {
		start := time.Now()
		ok := t.Run(st.name, st.fn)
		t.Logf("%s: %.1f s", st.name, time.Since(start).Seconds())
		if !ok {
			t.Logf("agent log:\n%s", tail(readFile(s.agentLog()), 4000))
			t.Logf("supervisor log:\n%s", tail(readFile(s.superviseLog()), 2000))
			if s.pcscd != nil {
				t.Logf("pcscd:\n%s", tail(readFile(s.pcscd.stdout)+readFile(s.pcscd.stderr), 2000))
			}
			return
		}
	}
	t.Logf("Wine suite: %.1f s in all", time.Since(suiteStart).Seconds())
}

// session is the state the steps share.
type session struct {
	w    *wineEnv
	b    builds
	pki  *testpki.PKI
	card *vpiv.Card

	vpcdPort int
	apiPort  int
	cmPort   int // the Credential Management endpoint's (one private Port Service port)
	pcscd    *background
	slot     *vcard.Slot
	relay    *background
	client   *agentClient
	ws       *wsConn
}

func (s *session) close() {
	if s.ws != nil {
		s.ws.c.Close()
	}
	if s.slot != nil {
		s.slot.Remove()
	}
	if s.relay != nil {
		s.relay.stop()
	}
	if s.pcscd != nil {
		s.pcscd.stop()
	}
}

// build cross-compiles the programs and builds the two MSIs.
func (w *wineEnv) build(t *testing.T) builds {
	t.Helper()
	start := time.Now()
	goBuild := func(out, pkg string) string {
		t.Helper()
		in := w.in("bin/" + out)
		cmd := exec.Command("go", "build", "-trimpath", "-o", w.host(in), pkg)
		cmd.Dir = w.module
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		return in
	}
	b := builds{msi: map[string]string{}, productCode: map[string]string{}}
	b.scripted = goBuild("scripted.exe", "./testdata/pinentry/scripted")
	b.relay = goBuild("relay.exe", "./wintest/relay")
	// The MSIs as a release is built: scripts/package builds the programs
	// it packages (cardagent.exe, cardagentw.exe, the tray) with the version.
	for _, v := range []string{oldVersion, newVersion} {
		out := w.host(w.in("msi/" + v))
		cmd := exec.Command(filepath.Join(w.module, "scripts", "package"), "msi", "--version", v, "--out", out)
		cmd.Dir = w.module
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/package msi --version %s: %v\n%s", v, err, o)
		}
		msis, _ := filepath.Glob(filepath.Join(out, "*.msi"))
		if len(msis) != 1 {
			t.Fatalf("scripts/package msi made %v", msis)
		}
		b.msi[v] = w.in("msi/" + v + "/" + filepath.Base(msis[0]))
		b.productCode[v] = msiProperty(t, msis[0], "ProductCode")
	}
	t.Logf("built the Windows programs and two MSIs in %.1f s", time.Since(start).Seconds())
	return b
}

// msiProperty reads a property from an MSI's Property table (msiinfo).
func msiProperty(t *testing.T, msi, name string) string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msi, "Property").Output()
	if err != nil {
		t.Fatalf("msiinfo: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(l, "\r"), "\t"); ok && k == name {
			return v
		}
	}
	t.Fatalf("%s has no property %s", msi, name)
	return ""
}

// msiexec runs msiexec from a batch file, as an administrator's script
// would: the quoting of a property with spaces survives only that way (Wine
// quotes each argument of its own command line as a whole).
func (s *session) msiexec(t *testing.T, name string, args ...string) result {
	t.Helper()
	logIn := s.w.in("logs/" + name + ".log")
	line := "msiexec " + strings.Join(args, " ") + ` /l*v "` + s.w.win(logIn) + `"`
	batIn := s.w.in(name + ".bat")
	if err := os.WriteFile(s.w.host(batIn), []byte("@echo off\r\n"+line+"\r\nexit /b %errorlevel%\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s.w.run(t, nil, "wine", "cmd", "/c", s.w.win(batIn))
}

// msiexecCode names msiexec's exit code. Wine passes a Windows exit code
// to Linux modulo 256: 3010 arrives as 194.
func msiexecCode(code int) string {
	for _, c := range []struct {
		win  int
		what string
	}{
		{0, "success"},
		{1603, "fatal error during installation"},
		{1618, "another installation is in progress"},
		{1638, "another version of this product is already installed"},
		{3010, "success, but a restart is required: files were in use (were the running agents stopped?)"},
	} {
		if c.win%256 == code {
			return strconv.Itoa(c.win) + " (" + c.what + ")"
		}
	}
	return strconv.Itoa(code) + " (a Windows exit code modulo 256)"
}

func (s *session) installArgs(version string) []string {
	return []string{"/i", `"` + s.w.win(s.b.msi[version]) + `"`, "/qn",
		`ALLOWEDORIGINS="` + signinOrigin + " " + portalOrigin + `"`, "ENVIRONMENT=live"}
}

var regLine = regexp.MustCompile(`^\s+(.+?)\s{4}(REG_[A-Z_]+)\s{4}(.*?)\s*$`)

// regValue reads one registry value with `reg query`.
func (s *session) regValue(t *testing.T, key, name string) (typ, value string, ok bool) {
	t.Helper()
	r := s.w.run(t, nil, "wine", "reg", "query", key, "/v", name)
	if r.code != 0 {
		return "", "", false
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if m := regLine.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil && strings.EqualFold(m[1], name) {
			return m[2], m[3], true
		}
	}
	return "", "", false
}

func (s *session) wantReg(t *testing.T, key, name, wantType, want string) {
	t.Helper()
	typ, v, ok := s.regValue(t, key, name)
	if !ok || typ != wantType || v != want {
		t.Errorf(`%s\%s = %s %q (present %v), want %s %q`, key, name, typ, v, ok, wantType, want)
	}
}

func (s *session) wantNoReg(t *testing.T, key, name string) {
	t.Helper()
	if typ, v, ok := s.regValue(t, key, name); ok {
		t.Errorf(`%s\%s is still there: %s %q`, key, name, typ, v)
	}
}

// shortcuts are where the Start menu shortcut may land: the all-users menu
// (ALLUSERS=1) or, as Wine's msi does, the installing user's.
func (s *session) shortcuts() []string {
	return []string{
		s.w.cdrive("ProgramData/Microsoft/Windows/Start Menu/Programs/cardagent.lnk"),
		s.w.cdrive("users/root/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/cardagent.lnk"),
	}
}

func (s *session) shortcut() string {
	for _, p := range s.shortcuts() {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// installedVersion runs the installed cardagent.exe version.
func (s *session) installedVersion(t *testing.T) string {
	t.Helper()
	out := s.w.wine(t, exeWin, "version").stdout
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "cardagent" || !strings.Contains(out, "windows/amd64") {
		t.Fatalf("cardagent.exe version: %q", out)
	}
	return f[1]
}

func (s *session) install(t *testing.T) {
	start := time.Now()
	if r := s.msiexec(t, "install-"+oldVersion, s.installArgs(oldVersion)...); r.code != 0 {
		t.Fatalf("msiexec /i: %s: %s", msiexecCode(r.code), r)
	}
	t.Logf("msiexec /i %s: %.1f s", oldVersion, time.Since(start).Seconds())
	for _, f := range []string{"cardagent.exe", "cardagentw.exe"} {
		if _, err := os.Stat(s.w.cdrive(installDir + "/" + f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	s.wantReg(t, runKey, installer.WindowsRunValue, "REG_SZ", `"C:\Program Files\cardagent\cardagentw.exe" supervise`)
	s.wantReg(t, policyKey, "AllowedOrigins", "REG_SZ", signinOrigin+" "+portalOrigin)
	s.wantReg(t, policyKey, "Environment", "REG_SZ", "live")
	s.wantReg(t, uninstall+s.b.productCode[oldVersion], "DisplayVersion", "REG_SZ", oldVersion)
	if p := s.shortcut(); p == "" {
		t.Errorf("no Start menu shortcut in %v", s.shortcuts())
	} else {
		t.Logf("Start menu shortcut: %s", strings.TrimPrefix(p, s.w.cdrive("")))
	}
	if v := s.installedVersion(t); v != oldVersion {
		t.Errorf("installed version %s, want %s", v, oldVersion)
	}
}

// configShow is what `config show --json` says.
type configShow struct {
	Config struct {
		Environment string `json:"environment"`
		PIN         struct {
			Policy       string `json:"policy"`
			CacheSeconds int    `json:"cache_seconds"`
		} `json:"pin"`
	} `json:"config"`
	Sources map[string]string `json:"sources"`
	Origins []string          `json:"allowed_origins_effective"`
}

// policy adds PIN policy to the registry (REG_SZ and REG_DWORD, as Group
// Policy would) beside what the MSI wrote, and checks what config show reads.
func (s *session) policy(t *testing.T) {
	s.w.wine(t, "reg", "add", policyKey, "/v", "PINPolicy", "/t", "REG_SZ", "/d", "cache", "/f")
	s.w.wine(t, "reg", "add", policyKey, "/v", "PINCacheSeconds", "/t", "REG_DWORD", "/d", "300", "/f")
	r := s.w.wine(t, exeWin, "config", "show", "--json")
	var cs configShow
	if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil {
		t.Fatalf("config show --json: %v\n%s", err, r.stdout)
	}
	if !slices.Equal(cs.Origins, []string{signinOrigin, portalOrigin}) {
		t.Errorf("allowed origins %v", cs.Origins)
	}
	if cs.Config.Environment != "live" || cs.Config.PIN.Policy != "cache" || cs.Config.PIN.CacheSeconds != 300 {
		t.Errorf("config %+v", cs.Config)
	}
	for key, value := range map[string]string{
		"allowed_origins": "AllowedOrigins", "environment": "Environment",
		"pin.policy": "PINPolicy", "pin.cache_seconds": "PINCacheSeconds",
	} {
		if want := `HKLM\Software\Policies\cardagent\` + value; !strings.EqualFold(cs.Sources[key], want) {
			t.Errorf("source of %s: %q, want %q", key, cs.Sources[key], want)
		}
	}
	// A value of the wrong type stops the agent with a message naming it.
	s.w.wine(t, "reg", "add", policyKey, "/v", "PINMaxLength", "/t", "REG_SZ", "/d", "eight", "/f")
	bad := s.w.run(t, nil, "wine", exeWin, "config", "show")
	if bad.code == 0 || !strings.Contains(bad.stderr, "PINMaxLength") {
		t.Errorf("a REG_SZ PINMaxLength was not refused by name: %s", bad)
	}
	s.w.wine(t, "reg", "delete", policyKey, "/v", "PINMaxLength", "/f")
}

func (s *session) startPcscd(t *testing.T) {
	t.Helper()
	confIn := s.w.in("reader.conf.d")
	os.MkdirAll(s.w.host(confIn), 0o755)
	conf := "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:" + strconv.Itoa(s.vpcdPort) +
		"\nLIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\n"
	if err := os.WriteFile(filepath.Join(s.w.host(confIn), "vpcd"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.w.host(s.w.in("pcscd/pcscd.comm")))
	s.pcscd = s.w.start(t, "pcscd", nil, "pcscd", "-f", "--disable-polkit", "-c", confIn)
	// Wait for vpcd to listen, without connecting: a connection to vpcd is a
	// card being inserted.
	deadline := time.Now().Add(10 * time.Second)
	for !listening(s.vpcdPort) {
		if !s.pcscd.running() || time.Now().After(deadline) {
			t.Fatalf("the root's pcscd does not listen on port %d: %s", s.vpcdPort, readFile(s.pcscd.stdout)+readFile(s.pcscd.stderr))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *session) stopPcscd() {
	if s.pcscd != nil {
		s.pcscd.stop()
		s.pcscd = nil
	}
}

func (s *session) insert(t *testing.T) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.vpcdPort))
	var err error
	for range 50 {
		if s.slot, err = vcard.Insert(addr, s.card, vcard.Options{}); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("inserting the card: %v", err)
}

func (s *session) remove() {
	if s.slot != nil {
		s.slot.Remove()
		s.slot = nil
	}
}

// cardsJSON runs the installed `cardagent.exe cards --json` until the
// first reader holds a card (the card needs a moment to be seen).
func (s *session) cardsJSON(t *testing.T) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.w.run(t, nil, "wine", exeWin, "cards", "--json")
		var m map[string]any
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &m) == nil && get(m, "readers", 0, "card") != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("cards --json shows no card: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *session) cards(t *testing.T) {
	// No pcscd: the Windows exit code for "no smart-card service".
	if r := s.w.run(t, nil, "wine", exeWin, "cards"); r.code != 3 {
		t.Errorf("cards without a smart-card service: %s; want exit 3", r)
	}
	s.startPcscd(t)
	s.insert(t)
	start := time.Now()
	m := s.cardsJSON(t)
	t.Logf("cards --json saw the card %.1f s after insertion", time.Since(start).Seconds())
	c := get(m, "readers", 0, "card")
	if get(m, "readers", 0, "name") != "Virtual PCD 00 00" || get(c, "kind") != "piv" || get(c, "supported") != true ||
		get(c, "holder", "uuid") != cardUUID || get(c, "pin", "tries_left") != 3.0 || get(c, "pin", "blocked") != false {
		t.Errorf("cards --json: %v", c)
	}
	var keys []string
	for _, cert := range get(c, "certificates").([]any) {
		keys = append(keys, get(cert, "key").(string))
		if get(cert, "expired") != false || get(cert, "key_type") != "RSA-2048" {
			t.Errorf("certificate %v", cert)
		}
	}
	if !slices.Contains(keys, "9a") || !slices.Contains(keys, "9c") {
		t.Errorf("certificates %v, want 9a and 9c", keys)
	}
}

func (s *session) agentLog() string {
	return s.w.cdrive("users/root/AppData/Local/cardagent/logs/cardagent.log")
}

func (s *session) superviseLog() string {
	return s.w.cdrive("users/root/AppData/Local/cardagent/logs/supervise.log")
}

func (s *session) record() string { return s.w.in("pinentry.jsonl") }

// agentProcs are the running agent processes by role: "run" (the agent,
// cardagentw.exe run), "supervise" (its supervisor, cardagentw.exe
// supervise) and "tray" (the agent's tray icon, cardagent-tray.exe).
func (s *session) agentProcs() map[string][]proc {
	out := map[string][]proc{}
	for _, p := range s.w.procs(func(a []string) bool { return len(a) > 0 && strings.Contains(a[0], `\cardagent`) }) {
		switch {
		case strings.HasSuffix(p.args[0], `\cardagent-tray.exe`):
			out["tray"] = append(out["tray"], p)
		case strings.HasSuffix(p.args[0], `\cardagentw.exe`) && len(p.args) > 1:
			out[p.args[1]] = append(out[p.args[1]], p)
		}
	}
	return out
}

// all is every process of agentProcs.
func all(m map[string][]proc) []proc {
	var out []proc
	for _, ps := range m {
		out = append(out, ps...)
	}
	return out
}

// waitAgent waits until exactly one agent and one supervisor run (and none
// of the pids in not), and returns the agent's.
func (s *session) waitAgent(t *testing.T, not ...int) proc {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps := s.agentProcs()
		agents, sups := ps["run"], ps["supervise"]
		if len(agents) == 1 && len(sups) == 1 && !slices.Contains(not, agents[0].pid) {
			return agents[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents %v, supervisors %v (want one each, agent not in %v)", agents, sups, not)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// boot is a Windows sign-in: `wineboot` runs what the HKLM Run key names.
func (s *session) boot(t *testing.T) {
	t.Helper()
	s.w.run(t, []string{"SCRIPTED_PINENTRY_RECORD=" + s.w.win(s.record()), "SCRIPTED_PINENTRY_PIN=" + cardPIN}, "wine", "wineboot")
}

func (s *session) signin(t *testing.T) {
	// The system configuration file IT would deploy: the port (free here),
	// the prompt (the scripted pinentry), debug logging. Origins and PIN
	// policy come from the registry.
	conf, _ := json.Marshal(map[string]any{
		"listen": map[string]any{"port": s.apiPort, "port_range": 1},
		"prompt": map[string]any{"backend": "pinentry", "pinentry": s.w.win(s.b.scripted)},
		// The prescribing page may sign, on a Port Service port of the test's own.
		"environments":          map[string]any{"live": map[string]any{"origins": []string{}, "signing_origins": []string{rxOrigin}}},
		"credential_management": map[string]any{"ports": []int{s.cmPort}},
		// Removal policy "lock" with no lock command: the Windows build calls
		// user32's LockWorkStation when the card that signed in is removed
		// (events step). Wine's LockWorkStation is a stub that fails, which is
		// how the call is seen here.
		"session": map[string]any{"removal": "lock", "removal_grace_seconds": 1},
		"log":     map[string]any{"level": "debug"},
	})
	confPath := s.w.cdrive("ProgramData/cardagent/config.json")
	os.MkdirAll(filepath.Dir(confPath), 0o755)
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	s.boot(t)
	s.waitAgent(t)
	s.relay = s.w.start(t, "relay", nil, "wine", s.w.win(s.b.relay), "-to", "127.0.0.1:"+strconv.Itoa(s.apiPort))
	relayAddr := s.relay.firstLine(t, 20*time.Second)
	s.client = newAgentClient(relayAddr, s.apiPort)
	info := s.client.waitInfo(t, signinOrigin, 20*time.Second)
	t.Logf("sign-in to answering API (autostart, supervisor, agent, relay): %.1f s", time.Since(start).Seconds())
	if info["name"] != "cardagent" || info["version"] != oldVersion || info["protocol"] != 1.0 {
		t.Errorf("info %v", info)
	}

	// The same-user check: a Linux process is no process of the agent's
	// Windows session (Wine's TCP table has no owner for it): its
	// connection is closed as soon as it is accepted, with no HTTP answer.
	direct := newAgentClient("127.0.0.1:"+strconv.Itoa(s.apiPort), s.apiPort)
	if resp, body, err := direct.info(signinOrigin); err == nil {
		t.Errorf("a Linux-side client was answered (%s %s): its connection should have been closed unanswered", resp.Status, body)
	}
	// Through the relay, a page the policy does not allow is refused; an allowed one gets CORS.
	if resp, _, err := s.client.info(otherOrigin); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("origin %s: %v %v", otherOrigin, err, resp)
	}
	resp, _, err := s.client.info(portalOrigin)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != portalOrigin {
		t.Errorf("origin %s: %v %v", portalOrigin, err, resp)
	}

	s.ws = s.client.dial(t, signinOrigin)
	if m := s.ws.call(t, "hello", map[string]any{"protocol": 1}, 10*time.Second); m["origin"] != signinOrigin || m["protocol"] != 1.0 {
		t.Errorf("hello: %v", m)
	}
	st := s.ws.call(t, "status", nil, 10*time.Second)
	c := get(st, "readers", 0, "card")
	if st["service"] != "up" || get(c, "state") != "ready" || get(c, "kind") != "piv" || get(c, "holder", "uuid") != cardUUID || get(c, "pin", "tries_left") != 3.0 {
		t.Fatalf("status: %v", st)
	}

	v := &token.Verifier{Roots: s.pki.Roots(), Intermediates: s.pki.Intermediates(), Challenges: token.NewMemoryStore()}
	for i := range 2 {
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		m := s.ws.call(t, "authenticate", map[string]any{"challenge": ch}, 60*time.Second)
		raw, _ := json.Marshal(m["token"])
		tok, err := token.ParseToken(raw)
		if err != nil || m["token"] == nil {
			t.Fatalf("authenticate %d: %v %v", i+1, m, err)
		}
		res, err := v.Verify(tok, signinOrigin, ch)
		if err != nil {
			t.Fatalf("token %d does not verify: %v", i+1, err)
		}
		if res.Holder.UUID != cardUUID || tok.Algorithm != token.RS256 {
			t.Errorf("token %d: holder %+v algorithm %s", i+1, res.Holder, tok.Algorithm)
		}
		t.Logf("authenticate %d: %.2f s", i+1, time.Since(start).Seconds())
	}
	// The PIN policy "cache" from the registry is in force, but a cached
	// sign-in must be confirmed in the consent dialog, which the pinentry
	// backend does not have: so the second sign-in asks for the PIN again
	// (never a silent sign-in). Each prompt named the page and the holder.
	rec := strings.Split(strings.TrimSpace(readFile(s.w.host(s.record()))), "\n")
	if len(rec) != 2 {
		t.Fatalf("%d PIN prompts, want 2 (a cached sign-in needs the consent dialog, which pinentry lacks): %q", len(rec), rec)
	}
	for _, r := range rec {
		var prompt struct{ Title, Desc string }
		if err := json.Unmarshal([]byte(r), &prompt); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(prompt.Desc+prompt.Title, "signin.wintest.example") || !strings.Contains(prompt.Desc, "RANDOM") {
			t.Errorf("the prompt did not name the page and the holder: %+v", prompt)
		}
	}
	for _, f := range []string{s.agentLog(), s.superviseLog()} {
		if b := readFile(f); b == "" || strings.Contains(b, cardPIN) {
			t.Errorf("%s: empty, or holds the PIN", f)
		}
	}
	// The agent's entries are in its own log only, not copied into the
	// supervisor's (run --console-log=fallback).
	if !strings.Contains(readFile(s.agentLog()), "card ready") || strings.Contains(readFile(s.superviseLog()), "card ready") {
		t.Errorf("want the agent's \"card ready\" in its log and not in the supervisor's:\n%s", tail(readFile(s.superviseLog()), 2000))
	}
}

// events: card and service changes reach a connected page under Wine,
// where SCardGetStatusChange does not block.
func (s *session) events(t *testing.T) {
	start := time.Now()
	s.remove()
	s.ws.waitEvent(t, "card_removed", 5*time.Second)
	t.Logf("card_removed after %.2f s", time.Since(start).Seconds())
	// The card signed in (signin step) and the policy is "lock" with a 1 s
	// grace period: the page is told the session ended, and the agent asks
	// Windows to lock the workstation. Wine cannot lock (its LockWorkStation
	// is a stub returning FALSE), so the call shows as the agent's logged
	// failure naming LockWorkStation.
	ev := s.ws.waitEvent(t, "session_ended", 10*time.Second)
	t.Logf("session_ended after %.2f s", time.Since(start).Seconds())
	if get(ev, "session", "action") != "lock" || get(ev, "session", "holder", "uuid") != cardUUID || get(ev, "session", "card_id") == nil {
		t.Errorf("session_ended: %v", ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFile(s.agentLog()), "locking the desktop failed") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	called := false
	for _, line := range strings.Split(readFile(s.agentLog()), "\n") {
		if strings.Contains(line, "locking the desktop failed") && strings.Contains(line, "LockWorkStation") {
			called = true
			t.Logf("the lock, as Wine answers it: %s", line)
		}
	}
	if !called {
		t.Errorf("no failed LockWorkStation call in the agent's log:\n%s", tail(readFile(s.agentLog()), 2000))
	}
	if st := s.ws.call(t, "status", nil, 10*time.Second); get(st, "readers", 0, "card") != nil {
		t.Errorf("status after removal: %v", st)
	}
	start = time.Now()
	s.insert(t)
	ev = s.ws.waitEvent(t, "card_reading", 10*time.Second)
	t.Logf("card_reading after %.2f s", time.Since(start).Seconds())
	if get(ev, "card", "state") != "reading" {
		t.Errorf("card_reading: %v", ev)
	}
	ev = s.ws.waitEvent(t, "card_inserted", 10*time.Second)
	t.Logf("card_inserted (read) after %.2f s", time.Since(start).Seconds())
	if get(ev, "card", "state") != "ready" {
		t.Errorf("card_inserted: %v", ev)
	}

	// The smart-card service stops and comes back: the agent reconnects.
	start = time.Now()
	s.remove()
	s.stopPcscd()
	s.ws.waitEvent(t, "service_down", 10*time.Second)
	t.Logf("service_down after %.2f s", time.Since(start).Seconds())
	start = time.Now()
	s.startPcscd(t)
	s.ws.waitEvent(t, "service_up", 15*time.Second)
	t.Logf("service_up %.2f s after pcscd started", time.Since(start).Seconds())
	s.insert(t)
	if ev := s.ws.waitEvent(t, "card_inserted", 10*time.Second); get(ev, "card", "state") != "ready" {
		t.Errorf("card_inserted after the service came back: %v", ev)
	}
	s.ws.c.Close()
	s.ws = nil
}

// idle: CPU used by the agent, its supervisor and the wineserver while
// nothing happens, the card in the reader.
func (s *session) idle(t *testing.T) {
	agent := s.waitAgent(t)
	ps := s.agentProcs()
	server := s.w.procs(func(a []string) bool { return len(a) > 0 && strings.Contains(a[0], "wineserver") })
	if len(server) != 1 {
		t.Fatalf("wineserver processes: %v", server)
	}
	time.Sleep(2 * time.Second) // let the last event's work settle
	watched := map[string]int{"agent": agent.pid, "supervisor": ps["supervise"][0].pid, "wineserver": server[0].pid}
	if len(ps["tray"]) == 1 {
		watched["tray"] = ps["tray"][0].pid
	}
	before := map[string]time.Duration{}
	for name, pid := range watched {
		c, err := cpuTime(pid)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = c
	}
	time.Sleep(idleWindow)
	for name, pid := range watched {
		c, err := cpuTime(pid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		used := c - before[name]
		t.Logf("idle CPU over %s: %s %s (%.2f%% of a core)", idleWindow, name, used, 100*used.Seconds()/idleWindow.Seconds())
		if used > idleCPUMax {
			t.Errorf("%s used %s of CPU in %s idle: spinning?", name, used, idleWindow)
		}
	}
	if strings.Contains(readFile(s.agentLog()), "GetStatusChange returned without a change") {
		t.Log("SCardGetStatusChange returned without blocking under this Wine: the monitor backed off")
	}
}

// supervisor: one per session, and it restarts a dead agent.
func (s *session) supervisor(t *testing.T) {
	agent := s.waitAgent(t)
	oldTrays := s.agentProcs()["tray"]
	// A second supervisor (the Start menu shortcut, or a second sign-in
	// script) finds the session's named mutex and leaves.
	second := s.w.start(t, "second-supervise", nil, "wine", exeWin, "supervise")
	select {
	case <-second.done:
		if second.err != nil || !strings.Contains(readFile(second.stderr), "already running") {
			t.Errorf("second supervisor: %v: %s", second.err, readFile(second.stderr))
		}
	case <-time.After(15 * time.Second):
		second.stop()
		t.Errorf("a second supervisor kept running beside the first")
	}
	start := time.Now()
	if err := syscall.Kill(agent.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitAgent(t, agent.pid)
	s.client.waitInfo(t, signinOrigin, 20*time.Second)
	t.Logf("agent killed: restarted and answering after %.1f s", time.Since(start).Seconds())
	// The killed agent's tray goes with it (its channel closed), although
	// under Wine it has no display and its icon never registers: the tray
	// reads its channel from the start (tray.RunProcess). A tray left
	// behind would also make the MSI steps find its program in use (the MSI
	// stops the agents' process trees, and an orphan is in none).
	deadline := time.Now().Add(5 * time.Second)
	for _, old := range oldTrays {
		for alive(old.pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(old.pid) {
			t.Errorf("the killed agent's tray (pid %d) did not exit with it: ending it", old.pid)
			syscall.Kill(old.pid, syscall.SIGKILL)
		}
	}
	if !strings.Contains(readFile(s.superviseLog()), "agent died: restarting") {
		t.Errorf("the supervisor log does not say it restarted the agent")
	}
}

func (s *session) upgrade(t *testing.T) {
	running := all(s.agentProcs())
	t.Logf("running before the upgrade: %v", running)
	start := time.Now()
	if r := s.msiexec(t, "upgrade-"+newVersion, s.installArgs(newVersion)...); r.code != 0 {
		t.Fatalf("msiexec /i %s over %s: %s: %s", newVersion, oldVersion, msiexecCode(r.code), r)
	}
	t.Logf("msiexec /i %s (major upgrade): %.1f s", newVersion, time.Since(start).Seconds())
	if v := s.installedVersion(t); v != newVersion {
		t.Errorf("installed version %s, want %s", v, newVersion)
	}
	s.wantNoReg(t, uninstall+s.b.productCode[oldVersion], "DisplayVersion")
	s.wantReg(t, uninstall+s.b.productCode[newVersion], "DisplayVersion", "REG_SZ", newVersion)
	s.wantReg(t, runKey, installer.WindowsRunValue, "REG_SZ", `"C:\Program Files\cardagent\cardagentw.exe" supervise`)
	s.wantReg(t, policyKey, "AllowedOrigins", "REG_SZ", signinOrigin+" "+portalOrigin)
	s.wantReg(t, policyKey, "Environment", "REG_SZ", "live")
	// The MSI stopped the running agents (taskkill) before replacing them.
	if len(running) < 2 {
		t.Errorf("before the upgrade only %v ran", running)
	}
	for _, p := range running {
		if alive(p.pid) {
			t.Errorf("%v (pid %d) still runs after the upgrade", p.args, p.pid)
		}
	}
	// The next sign-in starts the new version.
	s.boot(t)
	s.waitAgent(t)
	if info := s.client.waitInfo(t, signinOrigin, 20*time.Second); info["version"] != newVersion {
		t.Errorf("after the upgrade the agent says version %v", info["version"])
	}
}

func (s *session) downgrade(t *testing.T) {
	r := s.msiexec(t, "downgrade-"+oldVersion, s.installArgs(oldVersion)...)
	if r.code == 0 {
		t.Errorf("msiexec /i %s over %s succeeded", oldVersion, newVersion)
	}
	t.Logf("downgrade refused: exit %s", msiexecCode(r.code))
	if v := s.installedVersion(t); v != newVersion {
		t.Errorf("installed version %s after a refused downgrade, want %s", v, newVersion)
	}
	s.wantNoReg(t, uninstall+s.b.productCode[oldVersion], "DisplayVersion")
}

func (s *session) uninstall(t *testing.T) {
	running := all(s.agentProcs())
	start := time.Now()
	if r := s.msiexec(t, "uninstall", "/x", `"`+s.w.win(s.b.msi[newVersion])+`"`, "/qn"); r.code != 0 {
		t.Fatalf("msiexec /x: %s: %s", msiexecCode(r.code), r)
	}
	t.Logf("msiexec /x: %.1f s", time.Since(start).Seconds())
	for _, f := range []string{"cardagent.exe", "cardagentw.exe"} {
		if _, err := os.Stat(s.w.cdrive(installDir + "/" + f)); err == nil {
			t.Errorf("%s is still installed", f)
		}
	}
	s.wantNoReg(t, runKey, installer.WindowsRunValue)
	s.wantNoReg(t, policyKey, "AllowedOrigins")
	s.wantNoReg(t, policyKey, "Environment")
	s.wantNoReg(t, uninstall+s.b.productCode[newVersion], "DisplayVersion")
	if p := s.shortcut(); p != "" {
		t.Errorf("the Start menu shortcut is still there: %s", p)
	}
	// Values the MSI did not write (Group Policy's) are left alone.
	s.wantReg(t, policyKey, "PINPolicy", "REG_SZ", "cache")
	if len(running) < 2 {
		t.Errorf("before the uninstall only %v ran", running)
	}
	for _, p := range running {
		if alive(p.pid) {
			t.Errorf("%v (pid %d) still runs after the uninstall", p.args, p.pid)
		}
	}
}
