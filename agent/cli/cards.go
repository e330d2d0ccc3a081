package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/safetext"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/p11"
)

func cardsCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlags("cards", env)
	asJSON := fs.Bool("json", false, "print JSON (schema in docs/cards-json.md)")
	trace := fs.Bool("trace-apdu", false, "also write every APDU exchanged (PINs and PUKs redacted) and the series 8 probe to stderr, for reporting an unsupported card")
	traceFile := fs.String("trace-file", "", "write the APDU trace to this file instead of stderr (implies --trace-apdu)")
	module := fs.String("pkcs11-module", "", "path of a vendor PKCS#11 module to read series 8 cards through")
	if err := parse(fs, args); err != nil {
		return err
	}
	sc := env.Scanner
	if sc == nil {
		sc = &agent.Scanner{}
	}
	if *module != "" {
		sc.Drivers.PKCS11 = p11.Config{Module: *module}
	}
	if *trace || *traceFile != "" {
		var w io.Writer = env.Stderr
		if *traceFile != "" {
			f, err := os.OpenFile(*traceFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		sc.Trace = w
	}
	inv, err := sc.Scan(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	}
	printInventory(env.Stdout, inv)
	return nil
}

// maxField bounds one field of the table, in bytes.
const maxField = 256

// safe cleans a string that came from a card, a certificate or a reader
// for the terminal (see safetext.Line); --json prints the exact values.
func safe(s string) string { return safetext.Line(s, maxField) }

func printInventory(w io.Writer, inv *agent.Inventory) {
	for i, r := range inv.Readers {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Reader %s\n", safe(r.Name))
		c := r.Card
		if c == nil {
			fmt.Fprintln(w, "  no card")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Card\t%s\n", safe(c.Type))
		fmt.Fprintf(tw, "  ATR\t%s\n", safe(c.ATR))
		if c.Driver != "" {
			fmt.Fprintf(tw, "  Driver\t%s\n", safe(c.Driver))
		}
		if c.ID != "" {
			fmt.Fprintf(tw, "  Identity\t%s (%s)\n", safe(c.ID), safe(c.IDSource))
		}
		if c.Holder != nil {
			h := c.Holder.Name
			if c.Holder.UUID != "" {
				h += " (user ID " + c.Holder.UUID + ")"
			}
			fmt.Fprintf(tw, "  Holder\t%s\n", safe(h))
		}
		if c.PIN != nil {
			fmt.Fprintf(tw, "  PIN\t%s\n", pinWords(c.PIN))
		}
		if c.Error != "" {
			fmt.Fprintf(tw, "  Problem\t%s\n", safe(c.Error))
		}
		if c.Hint != "" {
			fmt.Fprintf(tw, "  What to do\t%s\n", safe(c.Hint))
		}
		tw.Flush()
		if len(c.Certificates) > 0 {
			fmt.Fprintln(w, "  Certificates")
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "    KEY\tUSAGE\tSUBJECT\tISSUER\tNOT AFTER\tDAYS LEFT\tKEY TYPE")
			for _, s := range c.Certificates {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%s\n", safe(s.Key), safe(s.Usage), safe(cn(s.Subject)), safe(cn(s.Issuer)),
					s.NotAfter.Format("2006-01-02"), daysWords(s.DaysLeft), safe(s.KeyType))
			}
			tw.Flush()
		}
	}
}

func pinWords(p *wire.PINReport) string {
	switch {
	case p.Blocked:
		return "blocked (no tries left)"
	case p.TriesLeft < 0:
		return "tries left unknown"
	case p.TriesLeft == 1:
		return "1 try left"
	}
	return fmt.Sprintf("%d tries left", p.TriesLeft)
}

func daysWords(d int) string {
	if d < 0 {
		return "expired"
	}
	return fmt.Sprint(d)
}

// cn shortens a distinguished name to its CN for the table; JSON keeps it whole.
func cn(dn string) string {
	for _, part := range strings.Split(dn, ",") {
		if v, ok := strings.CutPrefix(part, "CN="); ok {
			return v
		}
	}
	return dn
}
