package api

import (
	"errors"
	"net"
	"strconv"

	"go.uber.org/zap"
)

// errNoFreePort: none of the ports was free on every loopback address.
var errNoFreePort = errors.New("every port is taken")

// LoopbackHosts are the Host header values a request to port on loopback
// may carry: 127.0.0.1, localhost and [::1] with the port. Any other Host
// (a DNS-rebinding name) is refused.
func LoopbackHosts(port int) map[string]bool {
	ps := strconv.Itoa(port)
	return map[string]bool{"127.0.0.1:" + ps: true, "localhost:" + ps: true, "[::1]:" + ps: true}
}

// ListenLoopback binds 127.0.0.1 and ::1 on the first of ports free on both
// (one browser may reach "localhost" over either address, so both must be
// the same user's agent), and returns the listeners and the port. Where the
// host has no IPv6 loopback only 127.0.0.1 is bound. Port 0 takes any free
// port (tests).
func ListenLoopback(log *zap.Logger, ports []int) ([]net.Listener, int, error) {
	v6 := true
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		log.Warn("no IPv6 loopback; listening on 127.0.0.1 only", zap.Error(err))
		v6 = false
	} else {
		l.Close()
	}
	for _, p := range ports {
		for try := 0; try < 1 || (p == 0 && try < 20); try++ {
			l4, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				log.Debug("port not free", zap.Int("port", p), zap.Error(err))
				break
			}
			port := l4.Addr().(*net.TCPAddr).Port
			ls := []net.Listener{l4}
			if v6 {
				l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
				if err != nil {
					l4.Close()
					log.Debug("port not free on ::1", zap.Int("port", port), zap.Error(err))
					continue
				}
				ls = append(ls, l6)
			}
			return ls, port, nil
		}
	}
	return nil, 0, errNoFreePort
}
