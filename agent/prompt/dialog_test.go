package prompt

import (
	"strings"
	"testing"
)

func TestDescriptionBySecret(t *testing.T) {
	for _, tc := range []struct {
		req   Request
		label string
		want  []string
		not   []string
	}{
		{Request{Origin: "https://signin.example.nhs.uk", Holder: "Mary SMITH", TriesLeft: 2}, "PIN:",
			[]string{"https://signin.example.nhs.uk asks for your smartcard PIN to sign in.", "Card holder: Mary SMITH", "2 tries left before the card is blocked."}, nil},
		{Request{Purpose: "change your PIN", TriesLeft: 1}, "PIN:",
			[]string{"Enter your smartcard PIN to change your PIN.", "Last try before the card is blocked."}, nil},
		{Request{Purpose: "unblock your card", Secret: SecretPUK, TriesLeft: 2}, "PUK:",
			[]string{"Enter your card's PUK (unblocking code) to unblock your card.", "2 PUK tries left."}, []string{"PIN to"}},
		{Request{Secret: SecretPUK, TriesLeft: 0}, "PUK:", []string{"only your Registration Authority"}, nil},
		{Request{Secret: SecretNewPIN, TriesLeft: -1}, "New PIN:", []string{"Choose a new PIN for your smartcard."}, []string{"tries"}},
		{Request{Secret: SecretNewPINAgain}, "New PIN again:", []string{"Enter the new PIN again to confirm it."}, nil},
	} {
		d := Description(tc.req)
		if got := tc.req.Secret.Label(); got != tc.label {
			t.Errorf("%q: label %q, want %q", tc.req.Secret, got, tc.label)
		}
		for _, w := range tc.want {
			if !strings.Contains(d, w) {
				t.Errorf("%q: description %q lacks %q", tc.req.Secret, d, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(d, w) {
				t.Errorf("%q: description %q has %q", tc.req.Secret, d, w)
			}
		}
	}
}
