package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/safetext"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc"
)

// verifyResult is what `cardagent verify --json` prints.
type verifyResult struct {
	Valid       bool              `json:"valid"`
	Reason      token.Reason      `json:"reason,omitempty"` // why the token was rejected
	Detail      string            `json:"detail,omitempty"`
	Holder      *certinfo.Holder  `json:"holder,omitempty"`
	Certificate *certinfo.Summary `json:"certificate,omitempty"`
	Algorithm   string            `json:"algorithm,omitempty"`
	Origin      string            `json:"origin,omitempty"`
	Revocation  *token.Revocation `json:"revocation,omitempty"`
}

// verifyCmd checks a token as a relying party would, for scripts and for
// support: `cardagent verify --origin https://x --challenge C --roots roots.pem [--token FILE|-]`.
// The challenge is given on the command line, so whether it was issued, is
// fresh and unused is the caller's business; here it is single-use only
// within this run.
func verifyCmd(_ context.Context, env *Env, args []string) error {
	fs := newFlags("verify", env)
	origin := fs.String("origin", "", "the relying party's origin the token must be bound to (https://host[:port])")
	challenge := fs.String("challenge", "", "the challenge the relying party issued for this sign-in")
	roots := fs.String("roots", "", "PEM file of trusted root certificates (cardagent-vcard --certs-out DIR writes DIR/root.pem)")
	inter := fs.String("intermediates", "", "PEM file of issuing CA certificates, if the token does not carry them (DIR/chain.pem)")
	authCAs := fs.String("auth-cas", "", "PEM file of the CAs that issue authentication certificates (NHS: Authentication G2); when given, a certificate from any other CA cannot sign in")
	revocation := fs.String("revocation", string(token.RevocationBestEffort), "revocation check (OCSP, else CRL, from the certificate's URLs): off, best-effort (a status that cannot be learnt is accepted and reported) or required")
	tokenPath := fs.String("token", "-", "file holding the token JSON, - for standard input")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *origin == "":
		return usageError{"verify needs --origin"}
	case *challenge == "":
		return usageError{"verify needs --challenge"}
	case *roots == "":
		return usageError{"verify needs --roots"}
	}
	if err := token.CheckOrigin(*origin); err != nil {
		return usageError{err.Error()}
	}
	v := &token.Verifier{}
	var err error
	if v.Roots, err = loadPool(*roots); err != nil {
		return err
	}
	if *inter != "" {
		if v.Intermediates, err = loadPool(*inter); err != nil {
			return err
		}
	}
	if *authCAs != "" {
		data, err := os.ReadFile(*authCAs)
		if err != nil {
			return fmt.Errorf("reading certificates: %w", err)
		}
		if v.AuthenticationCAs, err = token.CertificatesFromPEM(data); err != nil {
			return fmt.Errorf("reading certificates from %s: %w", *authCAs, err)
		}
	}
	pol, err := token.ParseRevocationPolicy(*revocation)
	if err != nil {
		return usageError{err.Error()}
	}
	v.Revocation = &token.RevocationChecker{Policy: pol}
	store := token.NewMemoryStore()
	if err := store.Add(*challenge, time.Hour); err != nil {
		return err
	}
	v.Challenges = store

	data, err := readToken(*tokenPath)
	if err != nil {
		return err
	}
	// Either format: a Web eID token says so in its "format".
	var head struct {
		Format string `json:"format"`
	}
	_ = json.Unmarshal(data, &head)
	var res *token.Result
	if head.Format == token.WebEIDFormat {
		var wt *token.WebEIDToken
		if wt, err = token.ParseWebEIDToken(data); err == nil {
			res, err = v.VerifyWebEID(wt, *origin, *challenge)
		}
	} else {
		var tok *token.Token
		if tok, err = token.ParseToken(data); err == nil {
			res, err = v.Verify(tok, *origin, *challenge)
		}
	}
	if err != nil {
		if *asJSON {
			var ve *token.VerifyError
			if errors.As(err, &ve) {
				printJSON(env.Stdout, verifyResult{Reason: ve.Reason, Detail: err.Error()})
			}
		}
		return err
	}
	// A token is always signed with the card's authentication key.
	sum := certinfo.Summarise(string(pcsc.KeyAuthentication), res.Certificate, time.Now())
	if *asJSON {
		return printJSON(env.Stdout, verifyResult{Valid: true, Holder: &res.Holder, Certificate: &sum, Algorithm: res.Algorithm, Origin: res.Origin, Revocation: &res.Revocation})
	}
	who := res.Holder.Name
	if res.Holder.UUID != "" {
		who += " (user ID " + res.Holder.UUID + ")"
	}
	fmt.Fprintf(env.Stdout, "valid: signed by %s\n", who)
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  certificate\t%s\n", sum.Subject)
	fmt.Fprintf(tw, "  issuer\t%s\n", sum.Issuer)
	fmt.Fprintf(tw, "  serial\t%s\n", sum.Serial)
	fmt.Fprintf(tw, "  expires\t%s (%d days left)\n", sum.NotAfter.Format(time.DateOnly), sum.DaysLeft)
	fmt.Fprintf(tw, "  algorithm\t%s\n", res.Algorithm)
	fmt.Fprintf(tw, "  origin\t%s\n", res.Origin)
	rv := res.Revocation
	line := rv.Status
	if rv.Source != "" {
		line += " (" + rv.Source + ")"
	}
	line += ", policy " + string(rv.Policy)
	if rv.Detail != "" {
		line += ": " + safetext.Line(rv.Detail, 300)
	}
	fmt.Fprintf(tw, "  revocation\t%s\n", line)
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	pool, err := token.PoolFromPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading certificates from %s: %w", path, err)
	}
	return pool, nil
}

// readToken reads the token from path, or standard input for "-".
func readToken(path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading token: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, token.MaxTokenSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	return data, nil
}
