package daemon

import (
	"os"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
)

// newPinentry builds the pinentry prompter for the program at path, or says
// why there is none.
func newPinentry(path string, log *zap.Logger) (prompt.Prompter, string) {
	if path == "" {
		return nil, "no pinentry program configured (prompt.pinentry)"
	}
	if _, err := os.Stat(path); err != nil {
		return nil, "pinentry program: " + err.Error()
	}
	return &prompt.Pinentry{Path: path, Log: log.Named("pinentry")}, ""
}
