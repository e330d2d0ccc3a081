package nodump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Supported says whether Disable does anything on this OS.
const Supported = true

// Disable stops the kernel from writing a core dump of this process.
func Disable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("disabling core dumps: prctl: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("disabling core dumps: setrlimit: %w", err)
	}
	return nil
}
