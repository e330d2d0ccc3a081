package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/agent/safetext"
)

// errBlocked is doctor's exit status when something blocks sign-in.
var errBlocked = errors.New("sign-in cannot work on this computer until the problems marked FAIL are fixed")

// doctorCmd is `cardagent doctor [--json]`: every check sign-in needs, in
// plain words; exit status 1 when one of them blocks sign-in.
func doctorCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlags("doctor", env)
	asJSON := fs.Bool("json", false, "print the report as JSON (for support tooling)")
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath()+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	d := &doctor.Doctor{}
	if *cfgPath != "" {
		d.ConfigPath = *cfgPath
	}
	if env.Scanner != nil {
		d.Scanner = env.Scanner
	}
	r := d.Run(ctx)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printReport(env.Stdout, r)
	}
	if !r.OK {
		return errBlocked
	}
	return nil
}

var marks = map[doctor.Status]string{doctor.OK: "[ ok ]", doctor.Info: "[info]", doctor.Warn: "[warn]", doctor.Fail: "[FAIL]"}

func printReport(w io.Writer, r *doctor.Report) {
	// Results quote card, reader and certificate text: clean every string
	// for the terminal (--json prints the exact values).
	line := func(s string) string { return safetext.Line(s, 4*maxField) }
	fmt.Fprintf(w, "cardagent %s doctor (%s)\n\n", line(r.Version), line(r.OS))
	for _, res := range r.Results {
		fmt.Fprintf(w, "%s %s: %s\n", marks[res.Status], line(res.Title), line(res.Message))
		if res.Fix != "" {
			fmt.Fprintf(w, "       What to do: %s\n", line(res.Fix))
		}
	}
	fmt.Fprintln(w)
	if failed := r.Failed(); len(failed) > 0 {
		fmt.Fprintf(w, "Sign-in is blocked: %d problem(s) to fix (%s).\n", len(failed), line(strings.Join(failed, ", ")))
	} else {
		fmt.Fprintln(w, "Nothing blocks sign-in.")
	}
}
