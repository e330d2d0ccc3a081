package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

func TestDoctorCommand(t *testing.T) {
	// doctor probes the agent's ports and the Credential Management ports:
	// private ones, never those a developer's own agent listens on.
	ports := pcsctest.FreePorts(t, 2)
	file := configFile(t, fmt.Sprintf(`{"environments": {"live": {"origins": ["https://signin.example.org"]}}, "listen": {"port": %d, "port_range": 1}, "credential_management": {"ports": [%d]}}`, ports[0], ports[1]))
	noService := &agent.Scanner{ListReaders: func(context.Context) ([]pcsc.ReaderStatus, error) {
		return nil, pcsc.ErrServiceUnavailable
	}}
	var out, errb strings.Builder
	code := cli.Main(context.Background(), []string{"doctor", "--json", "--config", file}, &cli.Env{Stdout: &out, Stderr: &errb, Scanner: noService})
	if code != cli.ExitFailure || !strings.Contains(errb.String(), "sign-in cannot work") {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err, out.String())
	}
	if r.OK || r.Result(doctor.CheckPCSC).Status != doctor.Fail || r.Result(doctor.CheckOrigins).Status != doctor.OK {
		t.Errorf("report: %+v", r.Results)
	}
	for _, id := range []string{doctor.CheckConfig, doctor.CheckOrigins, doctor.CheckPCSC, doctor.CheckReaders, doctor.CheckCard,
		doctor.CheckAgent, doctor.CheckAutostart, doctor.CheckBrowserPolicy, doctor.CheckTray, doctor.CheckLegacy} {
		if r.Result(id).ID == "" {
			t.Errorf("no %s check in the report", id)
		}
	}

	out.Reset()
	errb.Reset()
	code = cli.Main(context.Background(), []string{"doctor", "--config", file}, &cli.Env{Stdout: &out, Stderr: &errb, Scanner: noService})
	if code != cli.ExitFailure || !strings.Contains(out.String(), "[FAIL] Smart-card service") || !strings.Contains(out.String(), "What to do:") {
		t.Errorf("text report: %d\n%s", code, out.String())
	}
}
