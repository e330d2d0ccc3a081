// Package faults holds the fault-injection tests.
//
// They run the whole agent (card service, loopback API, PIN prompt) over a
// private pcscd with vpcd and the virtual PIV card, with pcscd killed, the
// card pulled mid-APDU, garbage and mute cards, the browser leaving while
// the PIN prompt is open, a hanging or crashing pinentry, and `cardagent
// run` stopped and continued. Every scenario checks the same properties: the
// client gets a typed error within a bounded time, the agent keeps serving,
// no PIN try is spent that the user did not submit, nothing is written to
// the card, and no goroutine is left.
//
// The package has only tests; see docs/testing.md for how to run them.
package faults
