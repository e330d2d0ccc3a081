//go:build !darwin && !windows

package config

// SystemPolicyPath is the IT policy file: a document in config.json's
// schema whose settings override the configuration file.
const SystemPolicyPath = "/etc/cardagent/policy.json"

// SystemPolicy is where this system keeps IT policy: /etc/cardagent/policy.json.
func SystemPolicy() PolicySource { return PolicyFile(SystemPolicyPath) }
