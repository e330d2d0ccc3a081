package doctor

import "github.com/cardagent/cardagent/installer"

// SystemBrowserPolicies checks Chrome's and Edge's managed preferences.
func SystemBrowserPolicies() BrowserPolicies {
	return ManagedPreferencePolicies{Dir: "/Library/Managed Preferences"}
}

// SystemTrayHost: the macOS menu bar always hosts status items.
func SystemTrayHost() TrayHost { return AlwaysTray("The menu bar shows the agent's icon.") }

// SystemLegacyDetector looks for the NHS clients' loopback ports.
func SystemLegacyDetector() LegacyDetector { return PortLegacy{Ports: LegacyPorts} }

// SystemAutostart checks the LaunchAgent.
func SystemAutostart() AutostartChecker {
	return FileAutostart{Paths: []string{installer.MacLaunchAgent()}}
}
