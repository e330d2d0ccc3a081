package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/pcsc"
)

func TestExitCodes(t *testing.T) {
	noReaders := &agent.Scanner{ListReaders: func(context.Context) ([]pcsc.ReaderStatus, error) { return nil, nil }}
	noService := &agent.Scanner{ListReaders: func(context.Context) ([]pcsc.ReaderStatus, error) {
		return nil, pcsc.ErrServiceUnavailable
	}}
	tests := []struct {
		name    string
		args    []string
		scanner *agent.Scanner
		code    int
		stderr  string
	}{
		{"no args", nil, nil, cli.ExitUsage, "usage:"},
		{"unknown command", []string{"frobnicate"}, nil, cli.ExitUsage, `unknown command "frobnicate"`},
		{"the tray is its own program", []string{"tray"}, nil, cli.ExitUsage, `unknown command "tray"`},
		{"bad flag", []string{"cards", "--nope"}, nil, cli.ExitUsage, "flag provided but not defined"},
		{"extra arg", []string{"version", "x"}, nil, cli.ExitUsage, `unexpected argument "x"`},
		{"help", []string{"help"}, nil, cli.ExitOK, "commands:"},
		{"no reader", []string{"cards"}, noReaders, cli.ExitNoReader, "no smart-card reader"},
		{"no service", []string{"cards", "--json"}, noService, cli.ExitNoService, "no smart-card service running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := cli.Main(context.Background(), tt.args, &cli.Env{Stdout: &out, Stderr: &errb, Scanner: tt.scanner})
			if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d stderr %q; want %d containing %q", code, errb.String(), tt.code, tt.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := cli.Main(context.Background(), []string{"version"}, &cli.Env{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "cardagent "+agent.Version+" (go") {
		t.Errorf("version output %q", out.String())
	}
}
