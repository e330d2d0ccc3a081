//go:build !windows && !darwin

package doctor

import "github.com/cardagent/cardagent/installer"

// SystemBrowserPolicies checks the Linux policy files the packages install.
func SystemBrowserPolicies() BrowserPolicies {
	return FilePolicies{Files: installer.LinuxPolicyFiles}
}

// SystemTrayHost checks for a StatusNotifierWatcher on the session bus.
func SystemTrayHost() TrayHost { return DesktopTray{} }

// SystemLegacyDetector looks for the NHS clients' loopback ports (there is
// no Linux NHS client; a port in use there is worth knowing all the same).
func SystemLegacyDetector() LegacyDetector { return PortLegacy{Ports: LegacyPorts} }

// SystemAutostart checks the systemd user unit and its global enable link.
func SystemAutostart() AutostartChecker {
	return FileAutostart{Paths: []string{
		installer.LinuxUnitDir + "/" + installer.LinuxUnit,
		installer.LinuxWantsDir + "/" + installer.LinuxUnit,
	}}
}
