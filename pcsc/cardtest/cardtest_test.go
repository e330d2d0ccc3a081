package cardtest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// The suite's own tests: a software card that behaves as a correct driver
// must pass every case, and each deliberate defect ("mutation") must make
// the case that guards against it fail. The mutated runs happen in a child
// process (the same test binary), since a failing subtest cannot be undone.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("time.Sleep")) // the leak mutation's goroutine sleeps
}

// mutations maps each defect to the case that must catch it.
var mutations = map[string]string{
	"retry-wrong-pin":         "WrongPIN",
	"wrong-retries":           "WrongPIN",
	"no-reset":                "SignCorrectPIN",
	"no-zero":                 "SignCorrectPIN",
	"pin-twice":               "SignCorrectPIN",
	"bad-signature":           "Algorithms",
	"no-cache":                "CertificatesCached",
	"format-on-card":          "PINFormat",
	"blocked-accepts-correct": "BlockedPIN",
	"status-spends-try":       "PINStatus",
	"unstable-id":             "Identity",
	"unsupported-prompts":     "UnsupportedAlgorithm",
	"change-noop":             "ChangePIN",
	"unblock-wrong-flag":      "UnblockPIN",
	"retry-after-removal":     "CardRemovedDuringSign",
	"leak-goroutine":          "CardRemovedDuringSign",
	"removal-untyped":         "CardRemovedDuringSign",
	"logs-pin":                "SecretsNotLeaked",
	"pin-in-error":            "SecretsNotLeaked",
	"writes-on-sign":          "SignCorrectPIN",
	"not-serialised":          "ConcurrentSign",
	"ignores-context":         "SignCancelled",
}

func fixture(mutation string) cardtest.Fixture {
	return cardtest.Fixture{
		Name: "soft",
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			c := newSoftCard(t, mutation, log)
			return &cardtest.Env{
				Card:       c,
				PIN:        []byte("123456"),
				PUK:        []byte("12345678"),
				PINTries:   func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.tries },
				PUKTries:   func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.pukTries },
				PullOnSign: func() { c.mu.Lock(); c.pullArmed = true; c.mu.Unlock() },
				Writes:     func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.writes },
				APDUs:      func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.apdus },
			}
		},
		Algorithms: cardtest.ECDSAAlgorithms(),
		Caps:       cardtest.Caps{ChangePIN: true, Unblock: true},
	}
}

// TestReference: the correct software card passes the whole suite.
func TestReference(t *testing.T) {
	cardtest.Run(t, fixture(""))
}

// TestSignOnly: a sign-only fixture runs the signing cases and skips the rest.
func TestSignOnly(t *testing.T) {
	f := fixture("")
	f.SignOnly = true
	var ran []string
	inner := f.New
	f.New = func(t *testing.T, log *zap.Logger) *cardtest.Env {
		ran = append(ran, strings.SplitN(t.Name(), "/", 2)[1])
		return inner(t, log)
	}
	cardtest.Run(t, f)
	want := []string{"Certificates", "CertificatesCached", "SignCorrectPIN", "Algorithms", "UnsupportedAlgorithm", "SignCancelled", "ConcurrentSign"}
	if !slices.Equal(ran, want) {
		t.Errorf("sign-only fixture ran %v, want %v", ran, want)
	}
}

// TestMutant runs the suite against one mutation; only in the child process.
func TestMutant(t *testing.T) {
	m := os.Getenv("CARDTEST_MUTATION")
	if m == "" {
		t.Skip("run by TestSuiteCatchesDefects")
	}
	cardtest.Run(t, fixture(m))
}

// TestSuiteCatchesDefects: every mutation fails its case.
func TestSuiteCatchesDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns one child process per mutation")
	}
	names := make([]string, 0, len(mutations))
	for m := range mutations {
		names = append(names, m)
	}
	slices.Sort(names)
	for _, m := range names {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			want := mutations[m]
			// Only the case that must catch the defect runs in the child.
			cmd := exec.Command(os.Args[0], "-test.run", "^TestMutant$/^"+want+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "CARDTEST_MUTATION="+m)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a card with defect %q", m)
			}
			if !regexp.MustCompile(`--- FAIL: TestMutant/` + want + `\b`).Match(out) {
				t.Errorf("defect %q did not fail case %s:\n%s", m, want, tail(out, 3000))
			}
		})
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestCases: the documented case list is the one that runs.
func TestCases(t *testing.T) {
	got := cardtest.Cases()
	for _, want := range mutations {
		if !slices.Contains(got, want) {
			t.Errorf("mutation target %s is not a case (%v)", want, got)
		}
	}
}

// --- the software card -------------------------------------------------------

var (
	credsOnce sync.Once
	creds     *testpki.CardCreds
	other     *testpki.CardCreds
	credsErr  error
)

func cardCreds(t *testing.T) (*testpki.CardCreds, *testpki.CardCreds) {
	credsOnce.Do(func() {
		var p *testpki.PKI
		if p, credsErr = testpki.New(); credsErr != nil {
			return
		}
		if creds, credsErr = p.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400}); credsErr != nil {
			return
		}
		other, credsErr = p.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400, KeyIndex: 7})
	})
	if credsErr != nil {
		t.Fatal(credsErr)
	}
	return creds, other
}

// softCard is a pcsc.Card over software keys, with a PIN counter, an
// operation ("APDU") counter and optional defects.
type softCard struct {
	mut   string
	log   *zap.Logger
	keys  map[pcsc.KeyRef]crypto.Signer
	wrong crypto.Signer
	certs []pcsc.Certificate

	op sync.Mutex // serialises operations, as a transaction does

	mu                  sync.Mutex
	pin, puk            []byte
	tries, pukTries     int
	verified, certsRead bool
	pullArmed, pulled   bool
	apdus, writes, ids  int
}

const maxTries = 3

func newSoftCard(t *testing.T, mut string, log *zap.Logger) *softCard {
	c, o := cardCreds(t)
	return &softCard{
		mut: mut, log: log,
		keys:  map[pcsc.KeyRef]crypto.Signer{pcsc.KeyAuthentication: c.AuthKey, pcsc.KeySignature: c.SignKey},
		wrong: o.AuthKey,
		certs: []pcsc.Certificate{{Key: pcsc.KeyAuthentication, Cert: c.AuthCert}, {Key: pcsc.KeySignature, Cert: c.SignCert}},
		pin:   []byte("123456"), puk: []byte("12345678"),
		tries: maxTries, pukTries: maxTries,
	}
}

func (c *softCard) Info() pcsc.CardInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := "soft-1"
	if c.mut == "unstable-id" {
		c.ids++
		id = fmt.Sprintf("soft-%d", c.ids)
	}
	return pcsc.CardInfo{Kind: pcsc.KindPIV, Driver: "soft", ID: id, IDSource: "test"}
}

func (c *softCard) Certificates(context.Context) ([]pcsc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.certsRead || c.mut == "no-cache" {
		c.apdus++
		c.certsRead = true
	}
	return slices.Clone(c.certs), nil
}

func (c *softCard) PINStatus(context.Context) (pcsc.PINStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apdus++
	if c.mut == "status-spends-try" && c.tries > 0 {
		c.tries--
	}
	return pcsc.PINStatus{Retries: c.tries, Blocked: c.tries == 0, Verified: c.verified, MinLen: 6, MaxLen: 8}, nil
}

func validPIN(p []byte) bool {
	if len(p) < 6 || len(p) > 8 {
		return false
	}
	for _, b := range p {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

// verify checks pin on the card (c.mu held). It spends a try when wrong.
func (c *softCard) verify(pin []byte, puk bool) error {
	c.apdus++
	tries, ref := &c.tries, c.pin
	if puk {
		tries, ref = &c.pukTries, c.puk
	}
	if *tries == 0 && !(c.mut == "blocked-accepts-correct" && bytes.Equal(pin, ref)) {
		if puk {
			return pcsc.ErrPUKBlocked
		}
		return pcsc.ErrPINBlocked
	}
	if !bytes.Equal(pin, ref) {
		*tries--
		n := *tries
		if c.mut == "wrong-retries" {
			n++
		}
		flag := puk && c.mut != "unblock-wrong-flag"
		return &pcsc.AuthError{Retries: n, PUK: flag}
	}
	*tries = maxTries
	return nil
}

func (c *softCard) PrivateKey(ref pcsc.KeyRef, pin pcsc.PINFunc) (pcsc.Signer, error) {
	k, ok := c.keys[ref]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", ref, pcsc.ErrNotFound)
	}
	return &softKey{c: c, k: k, pin: pin}, nil
}

func (c *softCard) ChangePIN(_ context.Context, oldPIN, newPIN []byte) error {
	if !validPIN(oldPIN) || !validPIN(newPIN) {
		return pcsc.ErrPINFormat
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(oldPIN, false); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	if c.mut != "change-noop" {
		c.pin = bytes.Clone(newPIN)
	}
	return nil
}

func (c *softCard) UnblockPIN(_ context.Context, puk, newPIN []byte) error {
	if len(puk) != 8 || !validPIN(newPIN) {
		return pcsc.ErrPINFormat
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(puk, true); err != nil {
		return fmt.Errorf("unblocking PIN: %w", err)
	}
	c.pin, c.tries = bytes.Clone(newPIN), maxTries
	return nil
}

func (c *softCard) Close() error { return nil }

type softKey struct {
	c   *softCard
	k   crypto.Signer
	pin pcsc.PINFunc
}

func (k *softKey) Public() crypto.PublicKey { return k.k.Public() }

func (k *softKey) SignContext(ctx context.Context, rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := ctx.Err(); err != nil && k.c.mut != "ignores-context" {
		return nil, err
	}
	return k.Sign(rnd, digest, opts)
}

func (k *softKey) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c := k.c
	_, pss := opts.(*rsa.PSSOptions)
	unsupported := pss || opts.HashFunc() == crypto.MD4
	if unsupported && c.mut != "unsupported-prompts" {
		return nil, pcsc.ErrUnsupportedAlgorithm
	}
	pin, err := k.pin()
	if err != nil {
		return nil, err
	}
	if c.mut == "pin-twice" {
		if again, err := k.pin(); err == nil {
			clear(again)
		}
	}
	if c.mut != "no-zero" {
		defer clear(pin)
	}
	if unsupported {
		return nil, pcsc.ErrUnsupportedAlgorithm
	}
	if c.mut == "logs-pin" {
		c.log.Debug("verifying", zap.ByteString("pin", pin))
	}
	if !validPIN(pin) && c.mut != "format-on-card" {
		return nil, pcsc.ErrPINFormat
	}
	if c.mut != "not-serialised" {
		c.op.Lock()
		defer c.op.Unlock()
	}
	c.mu.Lock()
	if c.pullArmed || c.pulled {
		c.pulled = true
		c.mu.Unlock()
		switch c.mut {
		case "retry-after-removal":
			if again, err := k.pin(); err == nil {
				clear(again)
			}
		case "leak-goroutine":
			go time.Sleep(time.Hour)
		case "removal-untyped":
			return nil, errors.New("something went wrong")
		}
		return nil, fmt.Errorf("signing: %w", pcsc.ErrCardRemoved)
	}
	err = c.verify(pin, false)
	c.mu.Unlock()
	if err != nil {
		if c.mut == "pin-in-error" {
			return nil, fmt.Errorf("PIN %s: %w", pin, err)
		}
		if c.mut == "retry-wrong-pin" {
			if again, perr := k.pin(); perr == nil {
				c.mu.Lock()
				c.verify(again, false)
				c.mu.Unlock()
				clear(again)
			}
		}
		return nil, err
	}
	c.mu.Lock()
	c.verified = true
	if c.mut == "writes-on-sign" {
		c.writes++
	}
	c.mu.Unlock()
	if c.mut == "not-serialised" {
		// Without the operation lock, another signature's reset lands between our VERIFY and our signature.
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	still := c.verified
	c.mu.Unlock()
	if !still {
		return nil, &pcsc.StatusError{SW: 0x6982}
	}
	signer := k.k
	if c.mut == "bad-signature" {
		signer = c.wrong
	}
	c.mu.Lock()
	c.apdus++
	c.mu.Unlock()
	sig, err := signer.Sign(rnd, digest, opts)
	c.mu.Lock()
	if c.mut != "no-reset" {
		c.verified = false
		c.apdus++
	}
	c.mu.Unlock()
	return sig, err
}

var _ pcsc.Card = (*softCard)(nil)
