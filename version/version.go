// Package version holds cardagent's version string.
//
// It is a leaf package so that every program (the agent, the tray, the
// packager) can name its version without linking anything else.
package version

// Version is cardagent's version, set at build time with
// -ldflags "-X github.com/cardagent/cardagent/version.Version=1.2.3".
var Version = "0.1.0-dev"
