package config

// SystemPolicyPath is the managed preferences file an MDM configuration
// profile with a payload of type org.cardagent.agent creates.
const SystemPolicyPath = "/Library/Managed Preferences/org.cardagent.agent.plist"

// SystemPolicy is where this system keeps IT policy: managed preferences.
func SystemPolicy() PolicySource { return ManagedPreferences{Path: SystemPolicyPath} }
