package cm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/p11"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// openSCModule is where Debian's opensc-pkcs11 installs OpenSC's PKCS#11 module.
const openSCModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

// TestRequestToSignThroughPKCS11 signs through the PKCS#11 path: the card
// service serves the virtual PIV card with OpenSC's module (as IT would with
// a vendor module), so requestToSign uses the token's non-repudiation key
// (the certificate with contentCommitment), never the authentication key.
func TestRequestToSignThroughPKCS11(t *testing.T) {
	if _, err := os.Stat(openSCModule); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenSC's PKCS#11 module is not installed (run scripts/setup): %v", err)
		}
		t.Skipf("OpenSC's PKCS#11 module is not installed: %v", err)
	}
	pcscd := pcsctest.Require(t)
	// OpenSC: its PIV driver only, nothing cached, one transaction per login
	// that resets the card when it ends (its PIV driver cannot log out).
	conf := filepath.Join(t.TempDir(), "opensc.conf")
	if err := os.WriteFile(conf, []byte("app default {\n debug = 0;\n card_drivers = PIV-II;\n enable_default_driver = false;\n"+
		" reader_driver pcsc { transaction_end_action = reset; }\n"+
		" framework pkcs15 { use_file_caching = no; use_pin_caching = false; }\n pkcs11 { lock_login = true; }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENSC_CONF", conf)

	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{Surname: "TOKEN", Forename: "PAT", DaysLeft: 400}, func(c *vpiv.Config) { c.PIN = benchPIN })
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	svc := &agent.CardService{Log: zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())).Named("cards")}
	svc.Drivers.PKCS11 = p11.Config{Module: openSCModule}
	svc.Drivers.PKCS11Kinds = []pcsc.Kind{pcsc.KindPIV}
	pin := benchPIN
	p := prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(pin), nil })
	s := serve(t, svc, p, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	pcscd.Insert(t, 0, card, vcard.Options{})
	deadline := time.Now().Add(20 * time.Second)
	for !ready(svc) {
		if time.Now().After(deadline) {
			t.Fatalf("the card was not read: %+v", svc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := logs.FilterMessage("card ready").FilterField(zap.String("driver", "pkcs11")).Len(); n != 1 {
		t.Fatalf("the card is not served by PKCS#11: %v", logs.FilterMessage("card ready").All())
	}

	payload := base64.StdEncoding.EncodeToString(signedInfo)
	var res struct{ R Reply }
	out := hubCall(t, s, requestArg("RS256", [2]string{"a", payload}, [2]string{"b", payload}))
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.R.StatusCode != 0 || len(res.R.Signatures) != 2 {
		t.Fatalf("requestToSign through PKCS#11: %s", out)
	}
	signCert := card.Certificate(vpiv.SlotSignature)
	if res.R.Certificate != base64.StdEncoding.EncodeToString(signCert.Raw) {
		t.Fatal("the reply's certificate is not the token's signing certificate")
	}
	sum := sha256.Sum256(signedInfo)
	for _, sg := range res.R.Signatures {
		raw, _ := base64.StdEncoding.DecodeString(sg.Signature)
		if err := rsa.VerifyPKCS1v15(signCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], raw); err != nil {
			t.Errorf("signature %s: %v", sg.ID, err)
		}
	}

	// A wrong PIN costs exactly one try, through the module too.
	pin = "999999"
	tries := card.PINTries()
	res = struct{ R Reply }{}
	_ = json.Unmarshal([]byte(hubCall(t, s, requestArg("RS256", [2]string{"a", payload}))), &res)
	if res.R.StatusCode != StatusWrongPIN || card.PINTries() != tries-1 {
		t.Errorf("wrong PIN: status 0x%08X, tries %d (were %d)", res.R.StatusCode, card.PINTries(), tries)
	}
}
