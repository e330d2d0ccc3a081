package trayproto

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// EnvChannel tells a tray child where its channel is: two inherited
// descriptors (Unix) or handles (Windows), "read,write" in decimal.
const EnvChannel = "CARDAGENT_TRAY_CHANNEL"

// ErrNoChannel is returned by OpenChannel in a process the agent did not start.
var ErrNoChannel = errors.New("no channel to the agent: cardagent-tray is started by `cardagent run`, not by hand")

// OpenChannel opens, in the tray child, the channel its agent passed it.
func OpenChannel() (io.ReadCloser, io.WriteCloser, error) {
	v := os.Getenv(EnvChannel)
	if v == "" {
		return nil, nil, ErrNoChannel
	}
	parts := strings.Split(v, ",")
	if len(parts) != 2 {
		return nil, nil, fmt.Errorf("%s=%q: want two numbers", EnvChannel, v)
	}
	var fds [2]uintptr
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%s=%q: %w", EnvChannel, v, err)
		}
		fds[i] = uintptr(n)
	}
	r := os.NewFile(fds[0], "agent-to-tray")
	w := os.NewFile(fds[1], "tray-to-agent")
	if r == nil || w == nil {
		return nil, nil, fmt.Errorf("%s=%q: not open", EnvChannel, v)
	}
	// The children of the tray (dialogs, the browser) must not keep the
	// channel open: make sure neither is inherited further.
	noInherit(r)
	noInherit(w)
	return r, w, nil
}
