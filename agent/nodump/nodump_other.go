//go:build !linux && !darwin

package nodump

// Supported says whether Disable does anything on this OS.
const Supported = false

// Disable does nothing here.
func Disable() error { return nil }
