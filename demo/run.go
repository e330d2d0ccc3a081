package demo

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/token"
)

// ErrUsage marks a bad command line (cmd/cardagent-demo exits 2).
var ErrUsage = errors.New("usage")

// DefaultClientPath is where the JS client lives in the repository.
const DefaultClientPath = "web/cardagent-client/cardagent.js"

// Usage is the command's synopsis.
const Usage = `usage: cardagent-demo --pki DIR [flags]
       cardagent-demo --roots FILE [--intermediates FILE] [flags]

A TEST relying party: a sign-in page that uses cardagent, and verifies the
token it returns. Pair it with the development virtual card:

  cardagent-vcard insert --certs-out DIR     (writes DIR/root.pem, DIR/chain.pem)
  cardagent-demo --pki DIR                   (then open https://localhost:8443/)

Flags:
`

// Run is cardagent-demo: it parses args, serves the site until ctx ends,
// and reports where on stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, log *zap.Logger) error {
	fs := flag.NewFlagSet("cardagent-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, Usage)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	origin := fs.String("origin", "", "the site's origin as the browser shows it (default https://localhost:PORT, http:// with --http); cardagent's configuration must allow it")
	plain := fs.Bool("http", false, "serve plain HTTP instead of HTTPS with a self-signed certificate (browsers treat http://localhost as secure)")
	pki := fs.String("pki", "", "directory the virtual card wrote with --certs-out: trusts DIR/root.pem, builds chains with DIR/chain.pem")
	roots := fs.String("roots", "", "PEM file of trusted roots (instead of --pki)")
	inter := fs.String("intermediates", "", "PEM file of issuing CA certificates (with --roots)")
	client := fs.String("client", DefaultClientPath, "the JS client module to serve at /cardagent.js (the default is looked up from the working directory and the executable's directory upwards)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	switch {
	case *pki != "" && (*roots != "" || *inter != ""):
		return fmt.Errorf("%w: give --pki or --roots, not both", ErrUsage)
	case *pki != "":
		*roots, *inter = filepath.Join(*pki, "root.pem"), filepath.Join(*pki, "chain.pem")
	case *roots == "":
		return fmt.Errorf("%w: no trusted roots: start the virtual card with `cardagent-vcard insert --certs-out DIR` and pass --pki DIR (or --roots FILE)", ErrUsage)
	}
	trust, err := NewFileTrust(*roots, *inter)
	if err != nil {
		return err
	}
	clientJS, clientFile, err := loadClient(*client, *client == DefaultClientPath)
	if err != nil {
		return err
	}
	if clientJS == nil {
		log.Warn("JS client not found: the page will say so; pass --client PATH", zap.String("looked_for", DefaultClientPath))
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	scheme := "https"
	if *plain {
		scheme = "http"
	}
	if *origin == "" {
		*origin = scheme + "://localhost:" + port
	}
	if err := token.CheckOrigin(*origin); err != nil {
		ln.Close()
		return fmt.Errorf("%w: --origin: %v", ErrUsage, err)
	}
	site, err := New(Config{Origin: *origin, Trust: trust, Client: clientJS, Log: log.Named("site")})
	if err != nil {
		ln.Close()
		return err
	}
	var cert *tls.Certificate
	if !*plain {
		u, _ := url.Parse(*origin)
		c, err := SelfSignedCertificate([]string{"localhost", "127.0.0.1", "::1", u.Hostname()}, time.Now())
		if err != nil {
			ln.Close()
			return err
		}
		cert = &c
	}
	fmt.Fprintf(stdout, "cardagent demo relying party (TEST) at %s/\n", *origin)
	fmt.Fprintf(stdout, "  listening on %s://%s\n", scheme, ln.Addr())
	fmt.Fprintf(stdout, "  trusts %s", *roots)
	if *inter != "" {
		fmt.Fprintf(stdout, " (intermediates %s)", *inter)
	}
	fmt.Fprintln(stdout, ", reread when they change")
	if clientFile != "" {
		fmt.Fprintf(stdout, "  JS client %s\n", clientFile)
	}
	if !*plain {
		fmt.Fprintln(stdout, "  self-signed TLS certificate: the browser warns once (or use --http)")
	}
	fmt.Fprintf(stdout, "  cardagent must allow the origin %s\n", *origin)
	return Serve(ctx, ln, site, cert)
}

// loadClient reads the JS client. The default path is looked up from the
// working directory and from the executable's directory, and their parents,
// so `go run ./cmd/cardagent-demo` and bin/cardagent-demo both find it in
// the repository; a missing default gives nil (the page says so), a missing
// explicit path is an error.
func loadClient(p string, isDefault bool) (data []byte, file string, err error) {
	if !isDefault || filepath.IsAbs(p) {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("reading the JS client: %w", err)
		}
		return data, p, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for range 6 {
			f := filepath.Join(dir, filepath.FromSlash(p))
			data, err := os.ReadFile(f)
			if err == nil {
				return data, f, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, "", fmt.Errorf("reading the JS client: %w", err)
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return nil, "", nil
}
