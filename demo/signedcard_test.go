package demo_test

import (
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestSignedCardJS runs the unit tests of the page's "which card signed
// in" code with node's test runner, and checks the site serves it.
func TestSignedCardJS(t *testing.T) {
	s, _ := newSite(t, newFixture(t), nil)
	res := call(t, s, "GET", "/signedcard.js", "", "", nil, nil)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(string(body), "export function signedInCard") {
		t.Errorf("/signedcard.js: status %d type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	out, err := exec.Command(node, "--test", "signedcard_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
