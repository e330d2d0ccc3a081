package config_test

import (
	"testing"

	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/config"
)

// FuzzNormalizeOrigin: whatever an administrator writes as an origin (in the
// configuration file, the registry, a profile), NormalizeOrigin either
// refuses it or returns a form that is stable (normalising it again changes
// nothing) and that the loopback API accepts as a serialized origin (else the
// agent would refuse to start with a configuration the loader accepted).
func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{
		"https://signin.example.nhs.uk",
		"https://SignIn.Example.NHS.uk:443/",
		"http://localhost:8080",
		"http://[::1]:3000",
		"https://[2001:db8::1]",
		"https://bücher.example",
		"https://a.example:0443",
		"https://*.nhs.uk",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := config.NormalizeOrigin(s)
		if err != nil {
			return
		}
		again, err := config.NormalizeOrigin(n)
		if err != nil || again != n {
			t.Fatalf("%q normalised to %q, which normalises to %q (%v)", s, n, again, err)
		}
		if err := api.ValidateOrigin(n); err != nil {
			t.Fatalf("%q normalised to %q, which the API refuses: %v", s, n, err)
		}
	})
}
