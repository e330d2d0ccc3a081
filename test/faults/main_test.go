//go:build linux

package faults

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// long enables the slow variants (every mute point, not only one).
var long = flag.Bool("faults.long", false, "also run the slow fault variants (mute card at every APDU kind)")

// markerPIN is the card's PIN: it must appear in no log line and no reply.
const markerPIN = "729164"

// wrongPIN is a PIN the card refuses.
const wrongPIN = "111111"

const origin = "https://signin.faults.test"

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m, cleanupBuilds)) }

// The test PKI and the card's credentials: RSA-2048 keys are slow to make
// under -race, so once per test binary.
var (
	pkiOnce = sync.OnceValues(testpki.New)
	creds   = sync.OnceValues(func() (*testpki.CardCreds, error) {
		pki, err := pkiOnce()
		if err != nil {
			return nil, err
		}
		return pki.IssueCard(testpki.CardSpec{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", DaysLeft: 400})
	})
)

// newCard returns a fresh virtual PIV card (3 PIN tries, PIN markerPIN)
// carrying the shared credentials.
func newCard(t testing.TB) *vpiv.Card {
	t.Helper()
	c, err := creds()
	if err != nil {
		t.Fatal(err)
	}
	cfg := vpiv.NHSConfig(c)
	cfg.PIN = markerPIN
	card, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return card
}

func testPKI(t testing.TB) *testpki.PKI {
	t.Helper()
	pki, err := pkiOnce()
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

// Programs built once per test binary: the scripted pinentry and cardagent.
var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// build compiles the package pkg (relative to the module root) once and
// returns the program's path.
func build(t testing.TB, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds " + pkg)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "cardagent-faults-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

func cleanupBuilds() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}
