package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// HTTPProber asks http://127.0.0.1:PORT/cardagent/v1/info, as a sign-in
// page would (with its Origin).
type HTTPProber struct {
	Timeout time.Duration
}

// Probe implements AgentProber.
func (h HTTPProber) Probe(ctx context.Context, port int, origin string) Probe {
	resp, body, err := probeGET(ctx, h.Timeout, port, "/cardagent/v1/info", "", origin)
	switch {
	case errors.Is(err, errNotListening):
		return Probe{} // nothing listens
	case err != nil:
		return Probe{Listening: true, Detail: "no HTTP answer"}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var info struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		if json.Unmarshal(body, &info) == nil && info.Name == "cardagent" {
			return Probe{Listening: true, Agent: true, Version: info.Version}
		}
	case http.StatusForbidden:
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Code == "not_allowed" {
			return Probe{Listening: true, Refused: true}
		}
	}
	return Probe{Listening: true, Detail: fmt.Sprintf("HTTP %d from another program", resp.StatusCode)}
}

// PortServiceHTTPProber asks one Port Service port who holds it, as a
// prescribing page would (GET /PRS/GetPortNumber with its Origin).
type PortServiceHTTPProber struct {
	Timeout time.Duration
}

// ProbePortService implements PortServiceProber.
func (h PortServiceHTTPProber) ProbePortService(ctx context.Context, port int, origin string) PortServiceProbe {
	if l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		l.Close()
		return PortServiceProbe{Free: true}
	}
	resp, body, err := probeGET(ctx, h.Timeout, port, "/PRS/GetPortNumber", "localhost:"+strconv.Itoa(port), origin)
	switch {
	case errors.Is(err, errNotListening):
		// Not listening, yet not free: an outgoing connection holds it.
		return PortServiceProbe{Busy: true}
	case err != nil:
		return PortServiceProbe{Closed: true}
	}
	if resp.Header.Get("Server") != "cardagent" {
		return PortServiceProbe{Other: fmt.Sprintf("HTTP %d, server %q", resp.StatusCode, resp.Header.Get("Server"))}
	}
	if resp.StatusCode != http.StatusOK {
		return PortServiceProbe{Refused: true}
	}
	var r struct {
		PortData *struct {
			PortNumber int `json:"portNumber"`
		} `json:"portData"`
		Fault *struct {
			Message string `json:"message"`
		} `json:"faultException"`
	}
	if json.Unmarshal(body, &r) != nil {
		return PortServiceProbe{Other: "an unreadable answer"}
	}
	if r.Fault != nil {
		return PortServiceProbe{Agent: true, Fault: r.Fault.Message}
	}
	return PortServiceProbe{Agent: true}
}

// errNotListening: nothing accepted the connection.
var errNotListening = errors.New("nothing listens")

// probeGET sends GET path to 127.0.0.1:port with origin (and host as the
// Host header, when set), within timeout (default 1 s), and returns the
// answer with up to 4 KiB of its body (already closed).
func probeGET(ctx context.Context, timeout time.Duration, port int, path, host, origin string) (*http.Response, []byte, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Origin", origin)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, nil, errNotListening
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp, body, nil
}
