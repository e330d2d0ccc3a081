// Package hostsafe checks the repository's own tests for one rule: a test
// leaves the machine as it found it, and in particular never listens on or
// probes the ports a developer's running agent uses (the agent's default
// port range and the Credential Management ports). It reads the test
// sources; it runs nothing.
package hostsafe
