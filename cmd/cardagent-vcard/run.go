package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

// DefaultAddr is where Debian's vpcd listens for slot 0 by default.
const DefaultAddr = "127.0.0.1:35963"

const usage = `usage:
  cardagent-vcard insert [flags]       keep a TEST virtual card inserted into vpcd until interrupted
  cardagent-vcard gen-certs -out DIR   write a TEST PKI and card certificates (400, 60, 10, -1 days left)

Run "cardagent-vcard insert -h" or "cardagent-vcard gen-certs -h" for the flags.
`

// run is the whole program; main only wires signals, the logger and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, log *zap.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	var err error
	switch args[0] {
	case "insert":
		err = runInsert(ctx, args[1:], stdout, stderr, log)
	case "gen-certs":
		err = runGenCerts(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

type insertFlags struct {
	addr, typ, key, pin, puk, certsOut string
	uuid, surname, forename            string
	days                               int
	compress                           bool
}

func runInsert(ctx context.Context, args []string, stdout, stderr io.Writer, log *zap.Logger) error {
	var f insertFlags
	fs := flag.NewFlagSet("insert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", DefaultAddr, "vpcd address of the reader slot (slot 1 is the next port)")
	fs.StringVar(&f.typ, "type", "piv", "card type: piv (NHS series 9/10) or series8 (Oberthur)")
	fs.IntVar(&f.days, "days", 400, "days until the card's certificates expire (negative: expired)")
	fs.StringVar(&f.key, "key", string(testpki.RSA2048), "key type: rsa2048, rsa1024, p256 or p384 (series8: RSA only)")
	fs.StringVar(&f.pin, "pin", vpiv.DefaultPIN, "the card's PIN")
	fs.StringVar(&f.puk, "puk", "", "the card's PUK (default 12345678 for piv, "+vseries8.DefaultPUK+" for series8)")
	fs.StringVar(&f.uuid, "uuid", "999000000001", "the holder's 12-digit UUID")
	fs.StringVar(&f.surname, "surname", "DEVELOPER", "the holder's surname")
	fs.StringVar(&f.forename, "forename", "TEST", "the holder's forename")
	fs.BoolVar(&f.compress, "compress", false, "piv: store certificates gzip-compressed")
	fs.StringVar(&f.certsOut, "certs-out", "", "also write the PKI and the card's certificates and keys (PEM) into this directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kt, err := testpki.ParseKeyType(f.key)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	pki, err := testpki.New()
	if err != nil {
		return fmt.Errorf("creating test PKI: %w", err)
	}
	creds, err := pki.IssueCard(testpki.CardSpec{UUID: f.uuid, Surname: f.surname, Forename: f.forename, DaysLeft: f.days, KeyType: kt})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	card, puk, err := newCard(f, creds)
	if err != nil {
		return err
	}
	if f.certsOut != "" {
		if err := pki.WritePEM(f.certsOut); err != nil {
			return err
		}
		if err := creds.WritePEM(filepath.Join(f.certsOut, "card")); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "TEST virtual %s card for %s\n", f.typ, creds.AuthCert.Subject.CommonName)
	fmt.Fprintf(stdout, "  certificates expire %s (%d days), key %s\n", creds.AuthCert.NotAfter.Format(time.DateOnly), f.days, kt)
	fmt.Fprintf(stdout, "  PIN %s  PUK %s  (a test card: these are not secrets)\n", f.pin, puk)
	if f.certsOut != "" {
		fmt.Fprintf(stdout, "  PKI and card certificates written to %s\n", f.certsOut)
	}
	fmt.Fprintf(stdout, "  inserting into vpcd at %s; interrupt (Ctrl-C) to remove\n", f.addr)
	return keepInserted(ctx, f.addr, card, vcard.Insert, log)
}

// newCard builds the virtual card of the requested type and returns the PUK it uses.
func newCard(f insertFlags, creds *testpki.CardCreds) (vcard.Card, string, error) {
	switch f.typ {
	case "piv":
		puk := f.puk
		if puk == "" {
			puk = vpiv.DefaultPUK
		}
		cfg := vpiv.NHSConfig(creds)
		cfg.PIN, cfg.PUK = f.pin, puk
		if f.compress {
			for ref, s := range cfg.Slots {
				s.Compress = true
				cfg.Slots[ref] = s
			}
		}
		card, err := vpiv.New(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", errUsage, err)
		}
		return card, puk, nil
	case "series8":
		puk := f.puk
		if puk == "" {
			puk = vseries8.DefaultPUK
		}
		cfg, err := vseries8.NHSConfig(creds)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", errUsage, err)
		}
		cfg.PIN, cfg.PUK = []byte(f.pin), []byte(puk)
		card, err := vseries8.New(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", errUsage, err)
		}
		return card, puk, nil
	}
	return nil, "", fmt.Errorf("%w: --type %q (want piv or series8)", errUsage, f.typ)
}

// insertFunc is vcard.Insert; tests may pass another.
type insertFunc func(addr string, card vcard.Card, opts vcard.Options) (*vcard.Slot, error)

// Reconnection back-off: vpcd goes away whenever pcscd stops or restarts.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// stableAfter is how long a connection must have lasted for the back-off
	// to start again from minBackoff.
	stableAfter = 10 * time.Second
)

// keepInserted keeps card inserted into the vpcd slot at addr until ctx ends,
// reinserting it (with back-off) whenever vpcd closes the connection or is
// not listening, so the card survives a pcscd restart. The same card value
// is reinserted: PIN, tries and keys carry over, as for a physical card
// moved to another reader.
func keepInserted(ctx context.Context, addr string, card vcard.Card, insert insertFunc, log *zap.Logger) error {
	backoff := minBackoff
	failing := false
	for {
		slot, err := insert(addr, card, vcard.Options{})
		if err == nil {
			failing = false
			log.Info("card inserted", zap.String("addr", addr))
			start := time.Now()
			select {
			case <-ctx.Done():
				if err := slot.Remove(); err != nil {
					log.Warn("removing card", zap.Error(err))
				}
				log.Info("card removed")
				return nil
			case <-slot.Done():
				slot.Remove() // the connection ended already: only collects the goroutine
				log.Warn("vpcd closed the connection (pcscd stopped or restarted?); reinserting", zap.String("addr", addr))
			}
			if time.Since(start) > stableAfter {
				backoff = minBackoff
			}
		} else if !failing {
			failing = true
			log.Warn("vpcd not reachable; retrying (is pcscd running with the vpcd driver?)", zap.String("addr", addr), zap.Error(err))
		} else {
			log.Debug("vpcd still not reachable", zap.Error(err))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// expiryDir names the directory of one expiry case: card-400d, card-expired.
func expiryDir(days int) string {
	if days < 0 {
		return "card-expired"
	}
	return fmt.Sprintf("card-%dd", days)
}

func runGenCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write into (created if needed)")
	key := fs.String("key", string(testpki.RSA2048), "key type of the card keys: rsa2048, rsa1024, p256 or p384")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: gen-certs needs -out DIR", errUsage)
	}
	kt, err := testpki.ParseKeyType(*key)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	pki, err := testpki.New()
	if err != nil {
		return fmt.Errorf("creating test PKI: %w", err)
	}
	if err := pki.WritePEM(*out); err != nil {
		return err
	}
	var dirs []string
	for i, days := range testpki.ExpiryCases {
		creds, err := pki.IssueCard(testpki.CardSpec{
			UUID:     fmt.Sprintf("9990000000%02d", i+1),
			Surname:  "TEST",
			Forename: strings.ToUpper(strings.ReplaceAll(expiryDir(days), "-", "")),
			DaysLeft: days,
			KeyType:  kt,
			KeyIndex: i,
		})
		if err != nil {
			return err
		}
		dir := expiryDir(days)
		if err := creds.WritePEM(filepath.Join(*out, dir)); err != nil {
			return err
		}
		dirs = append(dirs, dir)
	}
	fmt.Fprintf(stdout, "TEST PKI written to %s: %s, %s, %s, %s; cards (%s, %s and keys) in %s\n",
		*out, testpki.RootFile, testpki.AuthCAFile, testpki.SignCAFile, testpki.ChainFile,
		testpki.AuthFile, testpki.SignFile, strings.Join(dirs, ", "))
	return nil
}
