package installer

import (
	"os"
	"path/filepath"
	"strings"
)

// WindowsAgentExe is the program the Windows autostart runs: the
// windowless build cardagentw.exe next to exe when there is one (the Run key
// must not open a console window), else exe itself.
func WindowsAgentExe(exe string) string {
	dir, base := filepath.Split(exe)
	if strings.EqualFold(base, "cardagent.exe") {
		w := filepath.Join(dir, "cardagentw.exe")
		if _, err := os.Stat(w); err == nil {
			return w
		}
	}
	return exe
}
