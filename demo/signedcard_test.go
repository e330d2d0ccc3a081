package demo

import (
	"os/exec"
	"testing"
)

// TestSignedCardJS runs the unit tests of the page's "which card signed
// in" code with node's test runner.
func TestSignedCardJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	out, err := exec.Command(node, "--test", "signedcard_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
