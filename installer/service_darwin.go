package installer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/kardianos/service"
)

// launchctl controls the LaunchAgent in the calling user's GUI domain.
type launchctl struct{ domain, target string }

func newController(string) (Controller, error) {
	uid := os.Getuid()
	if uid == 0 {
		return nil, errors.New("run `cardagent service start|stop|status` as the user whose session should get the agent, not as root")
	}
	d := "gui/" + strconv.Itoa(uid)
	return launchctl{domain: d, target: d + "/" + Label}, nil
}

func (l launchctl) run(args ...string) (string, error) {
	out, err := exec.Command("/bin/launchctl", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("launchctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (l launchctl) Start() error {
	if _, err := l.run("print", l.target); err == nil {
		_, err = l.run("kickstart", l.target)
		return err
	}
	_, err := l.run("bootstrap", l.domain, MacLaunchAgent())
	return err
}

func (l launchctl) Stop() error {
	_, err := l.run("bootout", l.target)
	return err
}

func (l launchctl) Status() (service.Status, error) {
	out, err := l.run("print", l.target)
	if err != nil {
		if _, serr := os.Stat(MacLaunchAgent()); serr == nil {
			return service.StatusStopped, nil
		}
		return service.StatusUnknown, service.ErrNotInstalled
	}
	if strings.Contains(out, "state = running") {
		return service.StatusRunning, nil
	}
	return service.StatusStopped, nil
}

// NewRegistry returns the HKLM registry (Windows only; nil elsewhere).
func NewRegistry() Registry { return nil }
