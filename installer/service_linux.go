package installer

import (
	"errors"
	"os"

	"github.com/kardianos/service"
)

func newController(string) (Controller, error) {
	if os.Geteuid() == 0 {
		return nil, errors.New("run `cardagent service start|stop|status` as the user whose session should get the agent, not as root")
	}
	if sys := service.ChosenSystem(); sys == nil || sys.String() != "linux-systemd" {
		return nil, errors.New("systemd does not manage this session: start the agent with `cardagent run` (for example from the desktop's autostart)")
	}
	return userService(Name)
}

// NewRegistry returns the HKLM registry (Windows only; nil elsewhere).
func NewRegistry() Registry { return nil }
