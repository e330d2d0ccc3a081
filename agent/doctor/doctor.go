// Package doctor checks, in plain words, what a smart-card sign-in needs on
// this computer.
//
// It checks the configuration and its allowed origins, the PC/SC service,
// readers, the card and its certificates, the agent answering on its
// loopback port, the autostart, the browser policies that spare the Local
// Network Access prompt, the tray host, and a legacy NHS client that would
// compete with the agent. `cardagent doctor` prints the report; support
// tooling reads it as JSON (--json).
//
// Every check reaches the system through a small interface, so each
// failure it reports has a unit test with a fake.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/desktoplock"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/version"
)

// Schema is the version of the JSON report.
const Schema = 1

// Status of one check.
type Status string

// Statuses, from good to bad.
const (
	OK   Status = "ok"
	Info Status = "info" // nothing to do, but worth knowing (no card inserted)
	Warn Status = "warn" // sign-in works, but something will bother users or IT
	Fail Status = "fail" // sign-in cannot work until this is fixed
)

// Check IDs (stable: support tooling matches them).
const (
	CheckConfig        = "config"
	CheckOrigins       = "origins"
	CheckPCSC          = "pcsc"
	CheckReaders       = "readers"
	CheckCard          = "card"
	CheckCertificates  = "certificates"
	CheckAgent         = "agent"
	CheckAutostart     = "autostart"
	CheckBrowserPolicy = "browser_policy"
	CheckTray          = "tray"
	CheckLegacy        = "legacy"
	CheckPortService   = "port_service"
	CheckRemoval       = "removal"
)

// Result is one check's outcome.
type Result struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Message says what was found; Fix says what to do (empty when nothing).
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is the whole diagnosis.
type Report struct {
	Schema  int       `json:"schema"`
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
	OS      string    `json:"os"`
	// OK is false when a check failed: sign-in cannot work.
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
}

// Failed lists the failed checks' IDs.
func (r *Report) Failed() []string {
	var ids []string
	for _, c := range r.Results {
		if c.Status == Fail {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Result returns the check with id (zero Result when absent).
func (r *Report) Result(id string) Result {
	for _, c := range r.Results {
		if c.ID == id {
			return c
		}
	}
	return Result{}
}

// CardScanner lists readers, cards and certificates (*agent.Scanner).
type CardScanner interface {
	Scan(ctx context.Context) (*agent.Inventory, error)
}

// AgentProber asks one loopback port whether a cardagent answers there.
type AgentProber interface {
	Probe(ctx context.Context, port int, origin string) Probe
}

// Probe is what one port answered.
type Probe struct {
	// Listening: something accepted the connection.
	Listening bool
	// Agent: it answered /cardagent/v1/info as cardagent (Version set).
	Agent   bool
	Version string
	// Refused: a cardagent refused the request (403): another user's agent,
	// or an origin it does not allow.
	Refused bool
	// Detail describes anything else (an HTTP error, another program).
	Detail string
}

// PortServiceProber asks one NHS Port Service port who holds it.
type PortServiceProber interface {
	ProbePortService(ctx context.Context, port int, origin string) PortServiceProbe
}

// PortServiceProbe is what one Port Service port showed.
type PortServiceProbe struct {
	// Free: nothing holds the port.
	Free bool
	// Busy: nothing listens, yet it cannot be bound (an outgoing connection holds it for now).
	Busy bool
	// Agent: this user's cardagent answered; Fault is its fault message, if any.
	Agent bool
	Fault string
	// Refused: a cardagent refused the request (the origin is not a signing origin).
	Refused bool
	// Closed: something accepted and closed the connection unanswered (another user's agent).
	Closed bool
	// Other describes another program that answered.
	Other string
}

// BrowserPolicies reports which browsers' Local Network Access policies
// list the origins.
type BrowserPolicies interface {
	Check(origins []string) []BrowserPolicy
}

// BrowserPolicy is one browser's policy state.
type BrowserPolicy struct {
	Browser string
	// Where names the file or registry key read.
	Where string
	// Present: a policy is installed; Missing lists the origins it lacks.
	Present bool
	Missing []string
}

// TrayHost tells whether the desktop can show the agent's tray icon.
type TrayHost interface {
	Check(ctx context.Context) (ok bool, detail string)
}

// LegacyDetector finds older NHS smart-card clients on this computer.
type LegacyDetector interface {
	Detect(ctx context.Context) []string
}

// AutostartChecker tells whether the agent starts by itself at sign-in.
type AutostartChecker interface {
	Installed() (ok bool, where string, err error)
}

// Doctor runs the checks. Zero fields get the real system's implementation.
type Doctor struct {
	// LoadConfig loads the effective configuration (config.LoadEffective).
	LoadConfig func() (config.Config, error)
	// ConfigPath names the configuration file in messages.
	ConfigPath string
	Scanner    CardScanner
	Prober     AgentProber
	PortProber PortServiceProber
	Policies   BrowserPolicies
	Tray       TrayHost
	Legacy     LegacyDetector
	Autostart  AutostartChecker
	// LockAvailable says why the desktop lock of session.lock_command (the
	// system's own when empty) cannot work here, nil when it can
	// (desktoplock.Locker.Available). It never locks.
	LockAvailable func(command []string) error
	Now           func() time.Time
}

func (d *Doctor) defaults() {
	if d.ConfigPath == "" {
		d.ConfigPath = config.DefaultPath()
	}
	if d.LockAvailable == nil {
		d.LockAvailable = func(command []string) error { return desktoplock.Locker{Command: command}.Available() }
	}
	if d.LoadConfig == nil {
		path := d.ConfigPath
		if path == config.DefaultPath() {
			path = ""
		}
		d.LoadConfig = func() (config.Config, error) { return config.LoadEffective(path) }
	}
	if d.Scanner == nil {
		d.Scanner = &agent.Scanner{}
	}
	if d.Prober == nil {
		d.Prober = HTTPProber{Timeout: time.Second}
	}
	if d.PortProber == nil {
		d.PortProber = PortServiceHTTPProber{Timeout: time.Second}
	}
	if d.Policies == nil {
		d.Policies = SystemBrowserPolicies()
	}
	if d.Tray == nil {
		d.Tray = SystemTrayHost()
	}
	if d.Legacy == nil {
		d.Legacy = SystemLegacyDetector()
	}
	if d.Autostart == nil {
		d.Autostart = SystemAutostart()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
}

// Run performs every check and returns the report.
func (d *Doctor) Run(ctx context.Context) *Report {
	d.defaults()
	r := &Report{Schema: Schema, Time: d.Now().UTC(), Version: version.Version, OS: runtime.GOOS + "/" + runtime.GOARCH}
	add := func(res Result) { r.Results = append(r.Results, res) }

	cfg, cfgOK := d.checkConfig(add)
	d.checkOrigins(cfg, cfgOK, add)
	d.checkCards(ctx, cfg, add)
	d.checkAgent(ctx, cfg, add)
	d.checkPortService(ctx, cfg, add)
	d.checkAutostart(add)
	d.checkBrowserPolicy(cfg, add)
	d.checkTray(ctx, add)
	d.checkRemoval(cfg, add)
	d.checkLegacy(ctx, add)

	r.OK = len(r.Failed()) == 0
	return r
}

func (d *Doctor) checkConfig(add func(Result)) (config.Config, bool) {
	res := Result{ID: CheckConfig, Title: "Configuration"}
	cfg, err := d.LoadConfig()
	if err != nil {
		res.Status = Fail
		res.Message = "The configuration has errors, so the agent will not start: " + err.Error()
		res.Fix = "Correct the file (docs/config.md lists every key), then run `cardagent config show` to check it."
		add(res)
		return config.Default(), false
	}
	res.Status, res.Message = OK, "Read "+d.ConfigPath+" (active environment \""+cfg.Environment+"\")."
	if _, err := os.Stat(d.ConfigPath); err != nil {
		res.Message = d.ConfigPath + " is absent: built-in defaults (active environment \"" + cfg.Environment + "\")."
	}
	var notes []string
	for _, w := range cfg.Warnings() {
		if !strings.HasPrefix(w, "no allowed origin") { // the origins check says it
			notes = append(notes, w)
		}
	}
	if len(notes) > 0 {
		res.Status = Warn
		res.Message += " Warnings: " + strings.Join(notes, "; ") + "."
	}
	add(res)
	return cfg, true
}

func (d *Doctor) checkOrigins(cfg config.Config, cfgOK bool, add func(Result)) {
	res := Result{ID: CheckOrigins, Title: "Allowed sign-in pages"}
	origins := cfg.AllowedOrigins()
	switch {
	case !cfgOK:
		res.Status, res.Message = Fail, "Unknown until the configuration is corrected."
	case len(origins) == 0:
		res.Status = Fail
		res.Message = "No sign-in page is allowed in environment \"" + cfg.Environment + "\": the agent refuses every page."
		res.Fix = "List the sign-in origins in environments." + cfg.Environment + ".origins or allowed_origins (configuration file or IT policy)."
	default:
		res.Status = OK
		res.Message = "Environment \"" + cfg.Environment + "\" allows " + strings.Join(origins, ", ") + " (set by " + cfg.Source("allowed_origins") + " and " + cfg.Source("environments."+cfg.Environment) + ")."
	}
	add(res)
}

func (d *Doctor) checkCards(ctx context.Context, cfg config.Config, add func(Result)) {
	pcscRes := Result{ID: CheckPCSC, Title: "Smart-card service"}
	readersRes := Result{ID: CheckReaders, Title: "Card readers"}
	inv, err := d.Scanner.Scan(ctx)
	switch {
	case errors.Is(err, pcsc.ErrServiceUnavailable):
		pcscRes.Status = Fail
		pcscRes.Message = "The smart-card service is not running, so no reader or card can be seen."
		pcscRes.Fix = pcscFix()
		add(pcscRes)
		add(Result{ID: CheckReaders, Title: readersRes.Title, Status: Info, Message: "Unknown until the smart-card service runs."})
		add(Result{ID: CheckCard, Title: "Smartcard", Status: Info, Message: "Unknown until the smart-card service runs."})
		return
	case errors.Is(err, pcsc.ErrNoReader):
		pcscRes.Status, pcscRes.Message = OK, "The smart-card service is running."
		add(pcscRes)
		readersRes.Status = Fail
		readersRes.Message = "No smart-card reader is connected."
		readersRes.Fix = "Plug in the card reader (or, in a remote session, check that smart-card redirection is enabled)."
		add(readersRes)
		add(Result{ID: CheckCard, Title: "Smartcard", Status: Info, Message: "No reader, so no card."})
		return
	case err != nil:
		pcscRes.Status = Fail
		pcscRes.Message = "The smart-card service could not be asked for readers: " + err.Error()
		pcscRes.Fix = pcscFix()
		add(pcscRes)
		return
	}
	pcscRes.Status, pcscRes.Message = OK, "The smart-card service is running."
	add(pcscRes)
	names := make([]string, len(inv.Readers))
	for i, rd := range inv.Readers {
		names[i] = rd.Name
	}
	readersRes.Status, readersRes.Message = OK, fmt.Sprintf("%d reader(s): %s.", len(names), strings.Join(names, ", "))
	add(readersRes)

	cardRes := Result{ID: CheckCard, Title: "Smartcard"}
	certRes := Result{ID: CheckCertificates, Title: "Certificates"}
	var cards []agent.ReaderReport
	for _, rd := range inv.Readers {
		if rd.Card != nil {
			cards = append(cards, rd)
		}
	}
	if len(cards) == 0 {
		cardRes.Status = Info
		cardRes.Message = "No card is inserted. (Insert one and run doctor again to check it and its certificates.)"
		add(cardRes)
		return
	}
	var cardLines, cardFixes, certLines, certFixes []string
	cardStatus, certStatus := OK, OK
	worse := func(s *Status, t Status) {
		if rank(t) > rank(*s) {
			*s = t
		}
	}
	for _, rd := range cards {
		c := rd.Card
		who := ""
		if c.Holder != nil && c.Holder.Name != "" {
			who = " of " + c.Holder.Name
		}
		switch {
		case c.Mute:
			worse(&cardStatus, Fail)
			cardLines = append(cardLines, rd.Name+": the card does not answer.")
			cardFixes = append(cardFixes, orDefault(c.Hint, "Take the card out, check it is the right way up, and insert it again."))
			continue
		case !c.Supported:
			worse(&cardStatus, Fail)
			cardLines = append(cardLines, rd.Name+": "+c.Type+" is not supported.")
			cardFixes = append(cardFixes, orDefault(c.Hint, "Use an NHS series 8, 9 or 10 smartcard; report other cards with the output of `cardagent cards --trace-apdu`."))
			continue
		case c.PIN != nil && c.PIN.Blocked:
			worse(&cardStatus, Fail)
			cardLines = append(cardLines, rd.Name+": the "+c.Type+who+" is blocked (too many wrong PINs).")
			cardFixes = append(cardFixes, "Unblock it with your Registration Authority or the self-service unlock.")
		case c.Error != "":
			worse(&cardStatus, Warn)
			cardLines = append(cardLines, rd.Name+": the "+c.Type+who+" could not be read completely: "+c.Error+".")
			if c.Hint != "" {
				cardFixes = append(cardFixes, c.Hint)
			}
		default:
			line := rd.Name + ": " + c.Type + who
			if c.PIN != nil && c.PIN.TriesLeft >= 0 {
				line += fmt.Sprintf(", %d PIN tries left", c.PIN.TriesLeft)
				if c.PIN.TriesLeft == 1 {
					worse(&cardStatus, Warn)
					cardFixes = append(cardFixes, "One wrong PIN more blocks the card.")
				}
			}
			cardLines = append(cardLines, line+".")
		}
		if len(c.Certificates) == 0 {
			worse(&certStatus, Fail)
			certLines = append(certLines, rd.Name+": the card holds no certificate.")
			certFixes = append(certFixes, "Ask your Registration Authority: the card needs new certificates.")
			continue
		}
		for _, s := range c.Certificates {
			name := s.Usage + " certificate"
			switch cfg.Expiry.Policy().Classify(s.DaysLeft, s.Expired) {
			case expiry.Expired:
				worse(&certStatus, Fail)
				certLines = append(certLines, fmt.Sprintf("%s: the %s expired on %s.", rd.Name, name, s.NotAfter.Format("2 January 2006")))
				certFixes = append(certFixes, "An expired card needs a visit to your Registration Authority.")
			case expiry.Warning, expiry.Urgent:
				worse(&certStatus, Warn)
				certLines = append(certLines, fmt.Sprintf("%s: the %s expires in %d days (%s).", rd.Name, name, s.DaysLeft, s.NotAfter.Format("2 January 2006")))
				fix := "Renew it now, before it expires"
				if u := cfg.RenewalURL(); u != "" {
					fix += ": " + u
				}
				certFixes = append(certFixes, fix+".")
			default:
				certLines = append(certLines, fmt.Sprintf("%s: the %s is valid for %d more days.", rd.Name, name, s.DaysLeft))
			}
		}
	}
	cardRes.Status, cardRes.Message, cardRes.Fix = cardStatus, strings.Join(cardLines, " "), strings.Join(uniq(cardFixes), " ")
	add(cardRes)
	if len(certLines) > 0 {
		certRes.Status, certRes.Message, certRes.Fix = certStatus, strings.Join(certLines, " "), strings.Join(uniq(certFixes), " ")
		add(certRes)
	}
}

func (d *Doctor) checkAgent(ctx context.Context, cfg config.Config, add func(Result)) {
	res := Result{ID: CheckAgent, Title: "Agent"}
	origin := "https://cardagent-doctor.invalid"
	if o := cfg.AllowedOrigins(); len(o) > 0 {
		origin = o[0]
	}
	var refused, others []string
	for _, port := range cfg.Listen.Ports() {
		p := d.Prober.Probe(ctx, port, origin)
		switch {
		case p.Agent:
			res.Status = OK
			res.Message = fmt.Sprintf("cardagent %s answers on 127.0.0.1:%d.", p.Version, port)
			add(res)
			return
		case p.Refused:
			refused = append(refused, fmt.Sprint(port))
		case p.Listening:
			others = append(others, fmt.Sprintf("%d (%s)", port, p.Detail))
		}
	}
	first, last := cfg.Listen.Port, cfg.Listen.Port+cfg.Listen.PortRange-1
	res.Status = Fail
	res.Message = fmt.Sprintf("No agent of yours answers on ports %d to %d: sign-in pages cannot reach it.", first, last)
	if len(refused) > 0 {
		res.Message += " A cardagent on port(s) " + strings.Join(refused, ", ") + " refused the check: another user's agent (on a shared computer), or one that does not allow " + origin + "."
	}
	if len(others) > 0 {
		res.Message += " Another program holds port(s) " + strings.Join(others, ", ") + "."
	}
	res.Fix = "Start it: `cardagent service start` (or sign out and in again). If it starts and stops, run `cardagent run` in a terminal to see why."
	if len(refused)+len(others) == cfg.Listen.PortRange {
		res.Fix = fmt.Sprintf("Every port from %d to %d is taken: widen listen.port_range.", first, last)
	}
	add(res)
}

// checkPortService checks the NHS Credential Management compatible endpoint:
// which of the Port Service ports this user's agent holds, and what holds
// the others. Prescribing pages need it; sign-in does not, so it never fails.
func (d *Doctor) checkPortService(ctx context.Context, cfg config.Config, add func(Result)) {
	res := Result{ID: CheckPortService, Title: "Prescription signing (NHS Port Service)"}
	cm := cfg.CredentialManagement
	if !cm.Enabled {
		res.Status, res.Message = Info, "The Credential Management compatible endpoint is turned off (credential_management.enabled)."
		add(res)
		return
	}
	origins := cfg.SigningOrigins()
	origin := "https://cardagent-doctor.invalid"
	if len(origins) > 0 {
		origin = origins[0]
	}
	var notes []string
	ours := 0
	fault := ""
	for _, port := range cm.Ports {
		p := d.PortProber.ProbePortService(ctx, port, origin)
		switch {
		case p.Agent:
			ours, fault = port, p.Fault
		case p.Refused:
			ours = port
		case p.Free:
			notes = append(notes, fmt.Sprintf("%d free", port))
		case p.Busy:
			notes = append(notes, fmt.Sprintf("%d held by an outgoing connection for now (the agent keeps trying)", port))
		case p.Closed:
			notes = append(notes, fmt.Sprintf("%d another user's cardagent", port))
		default:
			notes = append(notes, fmt.Sprintf("%d another program (%s): NHS Credential Management's own Port Service?", port, p.Other))
		}
		if ours != 0 {
			break
		}
	}
	switch {
	case ours != 0 && fault != "":
		res.Status, res.Message = Warn, fmt.Sprintf("cardagent answers the Port Service on port %d, but with a fault: %s", ours, fault)
		res.Fix = "A PIN prompt must be possible on this desktop: see the prompt check, or `cardagent run` in a terminal."
	case ours != 0 && len(origins) == 0:
		res.Status, res.Message = Info, fmt.Sprintf("cardagent holds Port Service port %d, but no signing origin is configured: every prescribing page is refused.", ours)
		res.Fix = "List the prescribing systems' origins in environments." + cfg.Environment + ".signing_origins (docs/credential-management.md)."
	case ours != 0:
		res.Status, res.Message = OK, fmt.Sprintf("cardagent answers the Port Service on port %d for %s.", ours, strings.Join(origins, ", "))
	default:
		res.Status = Warn
		res.Message = "No cardagent of yours answers the Port Service ports: prescribing pages cannot sign. Ports: " + strings.Join(notes, "; ") + "."
		res.Fix = "Start the agent (`cardagent service start`). If another program holds the ports, remove NHS Credential Management's Port Service; on a shared computer, at most " +
			fmt.Sprint(len(cm.Ports)) + " users' agents can each hold one."
	}
	add(res)
}

func (d *Doctor) checkAutostart(add func(Result)) {
	res := Result{ID: CheckAutostart, Title: "Start at sign-in"}
	ok, where, err := d.Autostart.Installed()
	switch {
	case err != nil:
		res.Status, res.Message = Warn, "Could not check the autostart: "+err.Error()
	case ok:
		res.Status, res.Message = OK, "The agent starts by itself in every user's session ("+where+")."
	default:
		res.Status = Warn
		res.Message = "The agent is not set to start at sign-in (" + where + " is missing): users must start it themselves."
		res.Fix = "Install the cardagent package, or run `sudo cardagent service install`."
	}
	add(res)
}

func (d *Doctor) checkBrowserPolicy(cfg config.Config, add func(Result)) {
	res := Result{ID: CheckBrowserPolicy, Title: "Browser policies"}
	origins := cfg.PageOrigins() // sign-in and prescribing pages
	if len(origins) == 0 {
		res.Status, res.Message = Info, "Nothing to check until sign-in origins are configured."
		add(res)
		return
	}
	states := d.Policies.Check(origins)
	var good, incomplete, missing []string
	for _, s := range states {
		switch {
		case !s.Present:
			missing = append(missing, s.Browser)
		case len(s.Missing) > 0:
			incomplete = append(incomplete, s.Browser+" ("+s.Where+" lacks "+strings.Join(s.Missing, ", ")+")")
		default:
			good = append(good, s.Browser)
		}
	}
	switch {
	case len(states) == 0:
		res.Status, res.Message = Info, "No browser policy location is known on this system."
	case len(incomplete) == 0 && len(missing) == 0:
		res.Status, res.Message = OK, "The sign-in origins are exempt from the Local Network Access prompt in "+strings.Join(good, ", ")+"."
	default:
		res.Status = Warn
		var parts []string
		if len(good) > 0 {
			parts = append(parts, "Set for "+strings.Join(good, ", ")+".")
		}
		if len(incomplete) > 0 {
			parts = append(parts, "Incomplete: "+strings.Join(incomplete, "; ")+".")
		}
		if len(missing) > 0 {
			parts = append(parts, "No policy for "+strings.Join(missing, ", ")+": the browser may ask the user to allow access to devices on the local network.")
		}
		res.Message = strings.Join(parts, " ")
		res.Fix = "Install the policies generated from the configuration: `cardagent policy generate --format " + policyFormat() + "` (docs/deployment.md)."
	}
	add(res)
}

func (d *Doctor) checkTray(ctx context.Context, add func(Result)) {
	res := Result{ID: CheckTray, Title: "Tray icon"}
	ok, detail := d.Tray.Check(ctx)
	if ok {
		res.Status, res.Message = OK, detail
	} else {
		res.Status, res.Message = Warn, detail+" The agent works without its tray icon; the PIN is still asked."
	}
	add(res)
}

// checkRemoval says what a removed card does (session.removal) and, for
// "lock", whether the desktop can be locked here.
func (d *Doctor) checkRemoval(cfg config.Config, add func(Result)) {
	res := Result{ID: CheckRemoval, Title: "Removed card"}
	s := cfg.Session
	grace := fmt.Sprintf("%d s", s.RemovalGraceSeconds)
	switch s.Removal {
	case config.RemovalNotify:
		res.Status, res.Message = OK, "When the card that signed in stays out for "+grace+", every page is told (session_ended) so it can sign the user out."
	case config.RemovalLock:
		if err := d.LockAvailable(s.LockCommand); err != nil {
			res.Status = Warn
			res.Message = "When the card that signed in stays out for " + grace + ", pages are told, but the desktop cannot be locked here: " + err.Error() + "."
			res.Fix = "Set session.lock_command to this desktop's lock program, or install loginctl (systemd-logind) or xdg-screensaver (Linux)."
		} else {
			res.Status, res.Message = OK, "When the card that signed in stays out for "+grace+", every page is told and the desktop is locked."
		}
	default:
		res.Status, res.Message = Info, "A removed card ends nothing: pages keep their sign-in (session.removal is \"none\")."
	}
	add(res)
}

func (d *Doctor) checkLegacy(ctx context.Context, add func(Result)) {
	res := Result{ID: CheckLegacy, Title: "Older NHS clients"}
	found := d.Legacy.Detect(ctx)
	if len(found) == 0 {
		res.Status, res.Message = OK, "No NHS Identity Agent or NHS Credential Management found."
	} else {
		res.Status = Warn
		res.Message = "Found: " + strings.Join(found, "; ") + ". It may answer the sign-in page and ask for the PIN instead of cardagent."
		res.Fix = "Remove the older client, unless this computer must keep it for systems cardagent does not serve."
	}
	add(res)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func rank(s Status) int { return slices.Index([]Status{OK, Info, Warn, Fail}, s) }

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func pcscFix() string {
	switch runtime.GOOS {
	case "windows":
		return "Start the \"Smart Card\" service (services.msc), or restart the computer."
	case "darwin":
		return "Restart the computer (macOS runs the smart-card service itself)."
	}
	return "Start it: `sudo systemctl enable --now pcscd.socket` (Debian/Ubuntu: install the pcscd package; Fedora/RHEL: pcsc-lite)."
}

func policyFormat() string {
	switch runtime.GOOS {
	case "windows":
		return "reg"
	case "darwin":
		return "mobileconfig"
	}
	return "chrome-json"
}
