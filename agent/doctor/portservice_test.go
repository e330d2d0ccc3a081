package doctor_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cm"
	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/agent/prompt"
)

type noSigner struct{}

func (noSigner) SignDocuments(context.Context, agent.SignRequest, prompt.Prompter) (*agent.SignResult, error) {
	return nil, errors.New("not in this test")
}

type noPrompt struct{}

func (noPrompt) PIN(context.Context, prompt.Request) ([]byte, error) { return nil, prompt.ErrCancelled }

// The real prober against a real endpoint, a free port, a port held by a
// plain listener that closes connections, and another HTTP server.
func TestPortServiceHTTPProber(t *testing.T) {
	const signing = "https://rx.example.org"
	srv, err := cm.New(nil, noSigner{}, noPrompt{}, cm.Options{Ports: []int{0}, SigningOrigins: []string{signing},
		CheckPeer: func(us, peer netip.AddrPort) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	closer, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }))
	defer other.Close()
	free, _ := net.Listen("tcp4", "127.0.0.1:0")
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()

	p := doctor.PortServiceHTTPProber{}
	tests := []struct {
		name   string
		port   int
		origin string
		check  func(doctor.PortServiceProbe) bool
	}{
		{"this user's agent", port, signing, func(r doctor.PortServiceProbe) bool { return r.Agent && r.Fault == "" }},
		{"agent refusing the origin", port, "https://other.example", func(r doctor.PortServiceProbe) bool { return r.Refused }},
		{"free", freePort, signing, func(r doctor.PortServiceProbe) bool { return r.Free }},
		{"closes unanswered", closer.Addr().(*net.TCPAddr).Port, signing, func(r doctor.PortServiceProbe) bool { return r.Closed }},
		{"another program", other.Listener.Addr().(*net.TCPAddr).Port, signing, func(r doctor.PortServiceProbe) bool { return r.Other != "" }},
	}
	for _, tc := range tests {
		if r := p.ProbePortService(context.Background(), tc.port, tc.origin); !tc.check(r) {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
}
