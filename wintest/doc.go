// Package wintest runs the Windows build of cardagent under Wine 10 against
// virtual cards.
//
// It tests the MSI (install, policy properties, autostart, major upgrade,
// downgrade refusal, uninstall), `cards`, `config show` with IT policy from
// the registry, the sign-in API with the Windows same-user check, the
// supervisor, and the monitor's idle CPU where SCardGetStatusChange does not
// block.
//
// The tests are behind the build tag "wine" (Linux only) and need root and the Debian 13
// root that scripts/wine-env prepares (the tests prepare it themselves; about
// a minute and 2 GB the first time):
//
//	go test -tags wine -count=1 ./wintest/
//
// Without root or without the environment they skip; under CI=true they fail
// instead. scripts/test runs them after the other tests. docs/testing.md
// ("Windows under Wine") lists what they verify and what Wine cannot show.
package wintest
