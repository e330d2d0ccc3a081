package api

import (
	"net"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Refused requests are logged, but a flood of them must not push the rest
// of the log out: at most refusalLinesPerWindow lines per refusalWindow,
// then one line with the number left unlogged; every logged string is cut
// to maxLoggedLen bytes.
const (
	refusalWindow         = 10 * time.Second
	refusalLinesPerWindow = 10
	maxLoggedLen          = 128
)

type refusalLog struct {
	start   time.Time
	lines   int
	dropped int
}

// add says whether to log a refusal at now, and how many were left
// unlogged in the window that just ended (0 if none or still running).
func (r *refusalLog) add(now time.Time) (logIt bool, droppedBefore int) {
	if r.start.IsZero() || now.Sub(r.start) >= refusalWindow {
		droppedBefore = r.dropped
		r.start, r.lines, r.dropped = now, 0, 0
	}
	if r.lines < refusalLinesPerWindow {
		r.lines++
		return true, droppedBefore
	}
	r.dropped++
	return false, droppedBefore
}

func (s *Server) logRefusal(r *http.Request, reason string) {
	s.mu.Lock()
	logIt, dropped := s.refusals.add(time.Now())
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("more requests refused (not logged one by one)", zap.Int("count", dropped))
	}
	if !logIt {
		return
	}
	origins := r.Header.Values("Origin")
	if len(origins) > 4 {
		origins = append(origins[:4:4], "… "+strconv.Itoa(len(origins)-4)+" more")
	}
	for i, o := range origins {
		origins[i] = truncate(o)
	}
	s.log.Warn("request refused", zap.String("reason", reason), zap.String("host", truncate(r.Host)),
		zap.Strings("origin", origins), zap.String("remote", r.RemoteAddr), zap.String("path", truncate(r.URL.Path)))
}

// truncate cuts s to at most maxLoggedLen bytes (on a rune boundary) and
// marks the cut.
func truncate(s string) string {
	if len(s) <= maxLoggedLen {
		return s
	}
	n := maxLoggedLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// busyBody is what a connection over the cap gets before it is closed.
const busyBody = `{"error":{"code":"busy"}}` + "\n"

var busyReply = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n" +
	"Retry-After: 5\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: " +
	strconv.Itoa(len(busyBody)) + "\r\n\r\n" + busyBody)

// writeBusy answers a connection over MaxHTTPConnections without reading
// its request.
func writeBusy(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(busyReply)
}
