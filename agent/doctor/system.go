package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cardagent/cardagent/agent/config/plist"
	"github.com/cardagent/cardagent/installer"
)

// LegacyPorts are the loopback ports the NHS clients are known to listen
// on (their own troubleshooting pages name them): NHS Credential
// Management / Identity Hub on 43485 and the Identity Agent connection on 55000.
var LegacyPorts = map[int]string{
	43485: "NHS Credential Management (or Identity Hub) listening on port 43485",
	55000: "an NHS Identity Agent service listening on port 55000",
}

// PortLegacy detects legacy clients by their loopback ports.
type PortLegacy struct {
	Ports map[int]string
	// Extra adds OS-specific findings (the Windows uninstall keys).
	Extra func() []string
}

// Detect implements LegacyDetector.
func (p PortLegacy) Detect(ctx context.Context) []string {
	var found []string
	if p.Extra != nil {
		found = append(found, p.Extra()...)
	}
	ports := make([]int, 0, len(p.Ports))
	for port := range p.Ports {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	for _, port := range ports {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			found = append(found, p.Ports[port])
		}
	}
	return found
}

// FilePolicies checks browser policy files (Linux JSON) under Root.
type FilePolicies struct {
	Root  string // "" for /
	Files []installer.PolicyFile
}

// Check implements BrowserPolicies: a browser's policy is present when its
// file parses and names the policy; Missing lists origins it lacks.
func (f FilePolicies) Check(origins []string) []BrowserPolicy {
	var out []BrowserPolicy
	for _, pf := range f.Files {
		bp := BrowserPolicy{Browser: pf.Browser, Where: pf.Path}
		data, err := os.ReadFile(filepath.Join(f.Root, filepath.FromSlash(pf.Path)))
		if err == nil {
			var listed []string
			var ok bool
			switch pf.Format {
			case installer.FormatChromeJSON:
				listed, ok = chromeJSONOrigins(data)
			case installer.FormatFirefox:
				listed, ok = firefoxSkipDomains(data)
			}
			if ok {
				bp.Present = true
				bp.Missing = missing(origins, listed, pf.Format == installer.FormatFirefox)
			}
		}
		out = append(out, bp)
	}
	return out
}

// ManagedPreferencePolicies checks macOS managed preferences (what a
// configuration profile installs) for Chrome and Edge.
type ManagedPreferencePolicies struct {
	Dir string // /Library/Managed Preferences
}

// Check implements BrowserPolicies.
func (m ManagedPreferencePolicies) Check(origins []string) []BrowserPolicy {
	var out []BrowserPolicy
	for _, b := range []struct{ name, domain string }{{"Google Chrome", "com.google.Chrome"}, {"Microsoft Edge", "com.microsoft.Edge"}} {
		p := filepath.Join(m.Dir, b.domain+".plist")
		bp := BrowserPolicy{Browser: b.name, Where: p}
		if data, err := os.ReadFile(p); err == nil {
			if v, err := plist.Parse(data); err == nil {
				if dict, ok := v.(map[string]any); ok {
					listed, present := plistOrigins(dict)
					bp.Present = present
					bp.Missing = missing(origins, listed, false)
				}
			}
		}
		out = append(out, bp)
	}
	return out
}

// RegistryLister lists a registry key's string values (HKLM).
type RegistryLister interface {
	Strings(key string) (values []string, ok bool, err error)
}

// RegistryPolicies checks the Chrome and Edge policies in the Windows registry.
type RegistryPolicies struct{ Registry RegistryLister }

// Check implements BrowserPolicies.
func (r RegistryPolicies) Check(origins []string) []BrowserPolicy {
	var out []BrowserPolicy
	for _, b := range []struct{ name, key string }{{"Google Chrome", `SOFTWARE\Policies\Google\Chrome`}, {"Microsoft Edge", `SOFTWARE\Policies\Microsoft\Edge`}} {
		bp := BrowserPolicy{Browser: b.name, Where: `HKLM\` + b.key}
		var listed []string
		for _, name := range []string{installer.PolicyLocalNetworkAccess, installer.PolicyLoopbackNetwork} {
			vals, ok, err := r.Registry.Strings(b.key + `\` + name)
			if err == nil && ok {
				bp.Present = true
				listed = append(listed, vals...)
			}
		}
		if bp.Present {
			bp.Missing = missing(origins, listed, false)
		}
		out = append(out, bp)
	}
	return out
}

func chromeJSONOrigins(data []byte) ([]string, bool) {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return nil, false
	}
	return plistOrigins(m)
}

// plistOrigins collects both Chromium policies' entries from a decoded
// JSON object or property list dictionary.
func plistOrigins(m map[string]any) ([]string, bool) {
	var out []string
	present := false
	for _, name := range []string{installer.PolicyLocalNetworkAccess, installer.PolicyLoopbackNetwork} {
		list, ok := m[name].([]any)
		if !ok {
			continue
		}
		present = true
		for _, e := range list {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out, present
}

func firefoxSkipDomains(data []byte) ([]string, bool) {
	var doc struct {
		Policies struct {
			LocalNetworkAccess *struct {
				SkipDomains []string `json:"SkipDomains"`
			} `json:"LocalNetworkAccess"`
		} `json:"policies"`
	}
	if json.Unmarshal(data, &doc) != nil || doc.Policies.LocalNetworkAccess == nil {
		return nil, false
	}
	return doc.Policies.LocalNetworkAccess.SkipDomains, true
}

// missing lists the origins not covered by listed (exact origins, a "*"
// pattern, or for Firefox the origin's host name).
func missing(origins, listed []string, hosts bool) []string {
	var out []string
	for _, o := range origins {
		want := o
		if hosts {
			if u, err := url.Parse(o); err == nil {
				want = u.Hostname()
			}
		}
		if !slices.Contains(listed, want) && !slices.Contains(listed, "*") {
			out = append(out, o)
		}
	}
	return out
}

// FileAutostart checks autostart files under Root.
type FileAutostart struct {
	Root  string
	Paths []string // every one must exist
}

// Installed implements AutostartChecker.
func (f FileAutostart) Installed() (bool, string, error) {
	for _, p := range f.Paths {
		if _, err := os.Lstat(filepath.Join(f.Root, filepath.FromSlash(p))); err != nil {
			if os.IsNotExist(err) {
				return false, p, nil
			}
			return false, p, err
		}
	}
	return true, fmt.Sprint(f.Paths[0]), nil
}
