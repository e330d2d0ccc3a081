// Package scard is the PC/SC API the agent uses.
//
// It establishes a context, lists readers, waits for reader and card
// changes, connects, and exchanges APDUs.
//
// On Linux and Windows it is github.com/ebfe/scard itself: every type is an
// alias and every constant a copy, so nothing changes there. On macOS it is
// a small binding, without cgo, to Apple's PCSC framework
// (/System/Library/Frameworks/PCSC.framework/PCSC) through
// github.com/ebitengine/purego, with the same names and methods; macOS lays
// the PC/SC structures out differently from pcsc-lite, see macabi.go and
// docs/macos.md. The layout arithmetic and the constant values are in files
// built on every OS, so they are tested where the tests run.
package scard
