// Package e2e holds cardagent's whole-system tests in a real browser.
//
// A real browser (Debian's chromium, headless, driven over the DevTools
// protocol with chromedp) opens the demo relying party's sign-in page, the
// page's JS client (web/cardagent-client) finds the agent on the loopback
// port range, the agent asks the scripted pinentry
// (testdata/pinentry/scripted) for the PIN, the virtual NHS PIV card
// (pcsc/vcard/vpiv) signs through a private pcscd (pcsc/pcsctest), and the
// demo site verifies the token.
//
// The tests need root (for the private pcscd) and chromium. Without them
// they skip locally and fail under CI=true. Set CARDAGENT_CHROMIUM to use
// another Chromium binary.
package e2e
