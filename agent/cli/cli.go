// Package cli implements the cardagent command line. cmd/cardagent is a thin
// main around Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/version"
)

// Exit codes. Scripts and support tooling may rely on them.
const (
	ExitOK           = 0
	ExitFailure      = 1 // anything else that went wrong
	ExitUsage        = 2 // bad command line
	ExitNoService    = 3 // the PC/SC service (pcscd, Windows Smart Card service) is not running
	ExitNoReader     = 4 // no smart-card reader connected
	ExitNotSupported = 5 // the requested feature is not available in this build
)

// Env is what a command runs with; tests swap parts of it.
type Env struct {
	Stdout, Stderr io.Writer
	// Scanner reads cards for `cards`; nil means the real PC/SC stack.
	Scanner *agent.Scanner
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "run the agent (card monitor, sign-in API, Credential Management endpoint)", runCmd},
		{"cards", "list readers, cards, certificates and PIN tries left", cardsCmd},
		{"readers", "list reader names, one per line", readersCmd},
		{"verify", "check a sign-in token as a relying party would", verifyCmd},
		{"doctor", "check everything sign-in needs on this computer and say what to fix", doctorCmd},
		{"config", "show the effective configuration and where each value came from (config show)", configCmd},
		{"policy", "generate browser policies for the allowed origins (policy generate)", policyCmd},
		{"service", "the autostart in every user's session (service install|uninstall|start|stop|status)", serviceCmd},
		{"supervise", "run the agent and restart it whenever it dies (the Windows autostart)", superviseCmd},
		{"version", "print the version", versionCmd},
	}
}

// Main runs the command line args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(env, c.run(ctx, env, args[1:]))
		}
	}
	fmt.Fprintf(env.Stderr, "cardagent: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cardagent <command> [flags]\n\ncommands:")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `cardagent <command> -h` for a command's flags.")
}

// helpAsked answers `cardagent <command> -h` (or --help, -help, help) for a
// command with actions: it prints the command's usage on standard output and
// reports true (exit 0). A missing or unknown action stays a usage error.
func helpAsked(env *Env, args []string, usage string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprintln(env.Stdout, usage)
		return true
	}
	return false
}

// usageError marks a bad command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(env *Env, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "cardagent: %v\n", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, pcsc.ErrServiceUnavailable):
		fmt.Fprintln(env.Stderr, "Start the smart-card service (Linux: `sudo systemctl start pcscd` or `sudo pcscd`; Windows: the \"Smart Card\" service) and try again.")
		return ExitNoService
	case errors.Is(err, pcsc.ErrNoReader):
		fmt.Fprintln(env.Stderr, "Connect a smart-card reader (or start the virtual card: scripts/virtual-card start) and try again.")
		return ExitNoReader
	}
	return ExitFailure
}

func newFlags(name string, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("cardagent "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func versionCmd(_ context.Context, env *Env, args []string) error {
	fs := newFlags("version", env)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "cardagent %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func readersCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlags("readers", env)
	if err := parse(fs, args); err != nil {
		return err
	}
	readers, err := pcsc.ListReaders(ctx)
	if err != nil {
		return err
	}
	for _, r := range readers {
		fmt.Fprintln(env.Stdout, r.Name)
	}
	return nil
}
