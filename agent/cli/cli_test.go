package cli_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/version"
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

// TestCommandHelp: `cardagent <command> -h` prints that command's usage and
// exits 0; a missing or unknown action exits 2 with the usage; the command
// list's columns line up.
func TestCommandHelp(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // a substring of standard output ("" for none)
		stderr string
	}{
		{[]string{"service", "--help"}, cli.ExitOK, "usage: cardagent service install|", ""},
		{[]string{"service", "-h"}, cli.ExitOK, "usage: cardagent service", ""},
		{[]string{"config", "-h"}, cli.ExitOK, "usage: cardagent config show", ""},
		{[]string{"policy", "help"}, cli.ExitOK, "usage: cardagent policy generate", ""},
		{[]string{"cards", "-h"}, cli.ExitOK, "", "-json"},
		{[]string{"service"}, cli.ExitUsage, "", "usage: cardagent service"},
		{[]string{"service", "bogus"}, cli.ExitUsage, "", ""},
		{[]string{"config"}, cli.ExitUsage, "", "usage: cardagent config show"},
		{[]string{"policy", "make"}, cli.ExitUsage, "", "usage: cardagent policy generate"},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		code := cli.Main(context.Background(), tt.args, &cli.Env{Stdout: &out, Stderr: &errb})
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, code, out.String(), errb.String())
		}
	}
	var errb strings.Builder
	cli.Main(context.Background(), []string{"--help"}, &cli.Env{Stdout: io.Discard, Stderr: &errb})
	col := -1
	for _, l := range strings.Split(errb.String(), "\n") {
		if !strings.HasPrefix(l, "  ") {
			continue
		}
		name := strings.Fields(l)[0]
		at := strings.Index(l[2+len(name):], strings.Fields(l)[1]) + 2 + len(name)
		if col == -1 {
			col = at
		} else if at != col {
			t.Errorf("the summary of %q starts at column %d, not %d:\n%s", name, at, col, errb.String())
		}
	}
	if col == -1 {
		t.Fatal("no command listed")
	}
}

func TestVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := cli.Main(context.Background(), []string{"version"}, &cli.Env{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "cardagent "+version.Version+" (go") {
		t.Errorf("version output %q", out.String())
	}
}
