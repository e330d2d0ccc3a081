package certinfo

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

func TestNHSIssued(t *testing.T) {
	tests := []struct {
		name   string
		issuer pkix.Name
		want   bool
	}{
		{"authentication G2", pkix.Name{CommonName: "NHS Authentication G2", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}, Country: []string{"GB"}}, true},
		{"level 1D", pkix.Name{CommonName: "NHS INT Level 1D", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}}, true},
		{"upper-case O", pkix.Name{CommonName: "NHS TEST Authentication G2", OrganizationalUnit: []string{"CA"}, Organization: []string{"NHS"}}, true},
		{"other organisation", pkix.Name{CommonName: "NHS Authentication G2", OrganizationalUnit: []string{"CA"}, Organization: []string{"Example"}}, false},
		{"no OU", pkix.Name{CommonName: "NHS Authentication G2", Organization: []string{"nhs"}}, false},
		{"CN not NHS", pkix.Name{CommonName: "Example CA", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}}, false},
		{"CN prefix without space", pkix.Name{CommonName: "NHSX CA", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}}, false},
		{"empty", pkix.Name{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NHSIssued(&x509.Certificate{Issuer: tt.issuer}); got != tt.want {
				t.Errorf("NHSIssued(%v) = %v, want %v", tt.issuer, got, tt.want)
			}
		})
	}
	if NHSIssued(nil) {
		t.Error("NHSIssued(nil)")
	}
}
