package installer

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"unicode/utf16"
)

// Browser policy formats for `cardagent policy generate`.
const (
	// FormatChromeJSON is a managed policy file for Chrome, Chromium and Edge
	// on Linux (/etc/opt/chrome/policies/managed/, ...).
	FormatChromeJSON = "chrome-json"
	// FormatFirefox is Firefox's policies.json.
	FormatFirefox = "firefox"
	// FormatReg is a Windows .reg file for Chrome, Edge and Firefox.
	FormatReg = "reg"
	// FormatMobileconfig is a macOS configuration profile for Chrome, Edge,
	// Firefox and cardagent itself.
	FormatMobileconfig = "mobileconfig"
)

// PolicyFormats lists the formats BrowserPolicy knows.
var PolicyFormats = []string{FormatChromeJSON, FormatFirefox, FormatReg, FormatMobileconfig}

// The Chromium-based browsers' policy names that exempt a page's origin from
// the Local Network Access checks: for any local address (Chrome/Edge 140+)
// and for loopback only (146+). Both are written, so every version is covered.
const (
	PolicyLocalNetworkAccess = "LocalNetworkAccessAllowedForUrls"
	PolicyLoopbackNetwork    = "LoopbackNetworkAllowedForUrls"
)

// chromium lists the Chromium-based browsers' policy locations.
var chromium = []struct{ Name, Key, MacDomain string }{
	{"Google Chrome", `Google\Chrome`, "com.google.Chrome"},
	{"Microsoft Edge", `Microsoft\Edge`, "com.microsoft.Edge"},
}

// PolicyFile is a browser policy file on Linux.
type PolicyFile struct {
	Browser, Path, Format string
}

// LinuxPolicyFiles are the browser policy files the deb and rpm install.
// Firefox reads a single policies.json for all its policies: the packages
// install it only where there is none (FirefoxPolicySource keeps a copy).
var LinuxPolicyFiles = []PolicyFile{
	{"Google Chrome", "/etc/opt/chrome/policies/managed/cardagent.json", FormatChromeJSON},
	{"Chromium", "/etc/chromium/policies/managed/cardagent.json", FormatChromeJSON},
	{"Microsoft Edge", "/etc/opt/edge/policies/managed/cardagent.json", FormatChromeJSON},
	{"Firefox", "/etc/firefox/policies/policies.json", FormatFirefox},
}

// FirefoxPolicySource is the packaged copy of the Firefox policy.
const FirefoxPolicySource = "/usr/share/cardagent/firefox-policies.json"

// BrowserPolicy renders the browser policy in format that lets pages from
// origins reach the agent on loopback without the Local Network Access
// prompt. source says where the origins came from (written as a comment
// where the format has comments). origins must be serialized web origins
// ("https://signin.example.org"); Firefox's policy lists their host names.
func BrowserPolicy(format string, origins []string, source string) ([]byte, error) {
	hosts := make([]string, 0, len(origins))
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("browser policy: %q is not a web origin", o)
		}
		if h := u.Hostname(); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if origins == nil {
		origins = []string{}
	}
	data := map[string]any{
		"Origins":  origins,
		"Hosts":    hosts,
		"Source":   oneLine(source),
		"Browsers": chromium,
		"Label":    Label,
	}
	switch format {
	case FormatChromeJSON:
		return render("policy/chrome.json", data)
	case FormatFirefox:
		return render("policy/firefox.json", data)
	case FormatReg:
		b, err := render("policy/policy.reg", data)
		if err != nil {
			return nil, err
		}
		return utf16LE(b), nil
	case FormatMobileconfig:
		key := strings.Join(origins, " ")
		return render("policy/cardagent.mobileconfig", data, template.FuncMap{"uuid": func(name string) string {
			return stableUUID("cardagent.mobileconfig", name, key)
		}})
	}
	return nil, fmt.Errorf("browser policy: unknown format %q: want %s", format, strings.Join(PolicyFormats, ", "))
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// utf16LE converts text to what regedit expects for "Windows Registry
// Editor Version 5.00" files: UTF-16LE with a byte order mark and CRLF
// line ends.
func utf16LE(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	var out bytes.Buffer
	out.Write([]byte{0xFF, 0xFE})
	for _, u := range utf16.Encode([]rune(s)) {
		out.WriteByte(byte(u))
		out.WriteByte(byte(u >> 8))
	}
	return out.Bytes()
}

// DecodeUTF16LE reverses the .reg encoding (for tests and doctor).
func DecodeUTF16LE(b []byte) (string, error) {
	if !bytes.HasPrefix(b, []byte{0xFF, 0xFE}) || len(b)%2 != 0 {
		return "", errors.New("not UTF-16LE text with a byte order mark")
	}
	u := make([]uint16, 0, len(b)/2-1)
	for i := 2; i < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	return string(utf16.Decode(u)), nil
}
