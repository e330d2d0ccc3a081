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
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/cardagent/v1/info", nil)
	if err != nil {
		return Probe{Detail: err.Error()}
	}
	req.Header.Set("Origin", origin)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return Probe{} // nothing listens
		}
		return Probe{Listening: true, Detail: "no HTTP answer"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
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
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp4", host); err == nil {
		l.Close()
		return PortServiceProbe{Free: true}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/PRS/GetPortNumber", nil)
	if err != nil {
		return PortServiceProbe{Other: err.Error()}
	}
	req.Host = "localhost:" + strconv.Itoa(port)
	req.Header.Set("Origin", origin)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// Not listening, yet not free: an outgoing connection holds it.
			return PortServiceProbe{Busy: true}
		}
		return PortServiceProbe{Closed: true}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
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
