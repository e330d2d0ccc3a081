package doctor

import (
	"errors"
	"slices"
	"strings"

	"golang.org/x/sys/windows/registry"

	"github.com/cardagent/cardagent/installer"
)

// SystemBrowserPolicies checks the Chrome and Edge policies in HKLM.
func SystemBrowserPolicies() BrowserPolicies { return RegistryPolicies{Registry: hklm{}} }

// SystemTrayHost: the Windows notification area always hosts icons.
func SystemTrayHost() TrayHost {
	return AlwaysTray("The notification area shows the agent's icon.")
}

// SystemLegacyDetector looks at the uninstall keys (both registry views)
// and the NHS clients' loopback ports.
func SystemLegacyDetector() LegacyDetector {
	return PortLegacy{Ports: LegacyPorts, Extra: uninstallEntries}
}

// SystemAutostart checks the HKLM Run value.
func SystemAutostart() AutostartChecker { return runKey{} }

// LegacyNames are the display names of the legacy clients' uninstall entries.
var LegacyNames = []string{"NHS Identity Agent", "NHS Credential Management", "NHS Identity Hub", "NHS Smartcard Connect"}

func uninstallEntries() []string {
	var found []string
	for _, view := range []uint32{registry.WOW64_64KEY, registry.WOW64_32KEY} {
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`, registry.ENUMERATE_SUB_KEYS|view)
		if err != nil {
			continue
		}
		subs, _ := k.ReadSubKeyNames(0)
		k.Close()
		for _, s := range subs {
			sk, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\`+s, registry.QUERY_VALUE|view)
			if err != nil {
				continue
			}
			name, _, _ := sk.GetStringValue("DisplayName")
			version, _, _ := sk.GetStringValue("DisplayVersion")
			sk.Close()
			for _, l := range LegacyNames {
				if strings.HasPrefix(name, l) {
					entry := name + " " + version + " (installed)"
					if !slices.Contains(found, entry) {
						found = append(found, entry)
					}
				}
			}
		}
	}
	return found
}

type hklm struct{}

func (hklm) Strings(key string) ([]string, bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer k.Close()
	names, err := k.ReadValueNames(0)
	if err != nil {
		return nil, false, err
	}
	var out []string
	for _, n := range names {
		if v, _, err := k.GetStringValue(n); err == nil {
			out = append(out, v)
		}
	}
	return out, true, nil
}

type runKey struct{}

func (runKey) Installed() (bool, string, error) {
	where := `HKLM\` + installer.WindowsRunKey + `\` + installer.WindowsRunValue
	_, ok, err := installer.NewRegistry().GetString(installer.WindowsRunKey, installer.WindowsRunValue)
	return ok, where, err
}
