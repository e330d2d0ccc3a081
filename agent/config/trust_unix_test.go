//go:build !windows

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckTrusted builds file trees in a temporary directory (never under
// /etc or /usr) and checks which the trust check refuses, and that the
// message names the part at fault and the fix.
func TestCheckTrusted(t *testing.T) {
	root := os.Getuid() == 0
	me := uint32(os.Getuid())
	tests := []struct {
		name     string
		needRoot bool
		setup    func(t *testing.T, dir string) string // returns the file to check
		owners   []uint32
		faulty   string // the path the error names ("" = accepted), relative to dir
		fix      string
	}{
		{name: "0644 file in 0755 dirs", setup: func(t *testing.T, d string) string { return mkfile(t, d, "a/config.json", 0o644) },
			owners: []uint32{me}},
		{name: "group-writable file", setup: func(t *testing.T, d string) string { return mkfile(t, d, "a/config.json", 0o664) },
			owners: []uint32{me}, faulty: "a/config.json", fix: "chmod go-w"},
		{name: "world-writable parent directory", setup: func(t *testing.T, d string) string {
			f := mkfile(t, d, "a/b/config.json", 0o644)
			chmod(t, filepath.Join(d, "a"), 0o777)
			return f
		}, owners: []uint32{me}, faulty: "a", fix: "chmod go-w"},
		{name: "sticky world-writable directory owned by root", needRoot: true, setup: func(t *testing.T, d string) string {
			f := mkfile(t, d, "tmp/mine/config.json", 0o644)
			chmod(t, filepath.Join(d, "tmp"), os.ModeSticky|0o777)
			return f
		}, owners: []uint32{0}},
		{name: "file owned by another user", needRoot: true, setup: func(t *testing.T, d string) string {
			f := mkfile(t, d, "a/policy.json", 0o644)
			chown(t, f, 65534)
			return f
		}, owners: []uint32{0}, faulty: "a/policy.json", fix: "chown root:root"},
		{name: "per-user file of the user it is trusted for", needRoot: true, setup: func(t *testing.T, d string) string {
			f := mkfile(t, d, "a/config.json", 0o644)
			chown(t, f, 65534)
			return f
		}, owners: []uint32{0, 65534}},
		{name: "parent directory owned by another user", needRoot: true, setup: func(t *testing.T, d string) string {
			f := mkfile(t, d, "home/other/config.json", 0o644)
			chown(t, filepath.Join(d, "home/other"), 65534)
			return f
		}, owners: []uint32{0}, faulty: "home/other", fix: "chown"},
		{name: "symbolic link into a world-writable directory", setup: func(t *testing.T, d string) string {
			target := mkfile(t, d, "open/config.json", 0o644)
			chmod(t, filepath.Join(d, "open"), 0o777)
			mkdir(t, filepath.Join(d, "etc"))
			link := filepath.Join(d, "etc", "config.json")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, owners: []uint32{me}, faulty: "open", fix: "chmod go-w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot && !root {
				t.Skip("needs root to give files to other users")
			}
			dir := trustedTempDir(t)
			file := tt.setup(t, dir)
			err := checkTrusted("configuration file", file, tt.owners)
			if tt.faulty == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var te *TrustError
			if !errors.As(err, &te) || !errors.Is(err, ErrUntrustedFile) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
			if want := filepath.Join(dir, tt.faulty); te.Path != want {
				t.Errorf("names %s, want %s", te.Path, want)
			}
			if !strings.Contains(err.Error(), tt.fix) || !strings.Contains(err.Error(), te.Path) {
				t.Errorf("message %q does not say how to fix %s", err, te.Path)
			}
		})
	}
}

// TestPolicyFileRefusedWhenWritable: a world-writable policy.json is
// refused, not applied; so is a configuration file in a writable directory.
func TestPolicyFileRefusedWhenWritable(t *testing.T) {
	dir := trustedTempDir(t)
	owners := policyOwners
	if os.Getuid() != 0 {
		policyOwners = []uint32{0, uint32(os.Getuid())}
		defer func() { policyOwners = owners }()
	}
	pol := mkfile(t, dir, "etc/policy.json", 0o666)
	if err := os.WriteFile(pol, []byte(`{"allowed_origins": ["https://attacker.example"], "prompt": {"pinentry": "/tmp/evil"}}`), 0o666); err != nil {
		t.Fatal(err)
	}
	chmod(t, pol, 0o666)
	cfg := mkfile(t, dir, "etc/config.json", 0o644)
	_, err := LoadLayered(cfg, PolicyFile(pol))
	if !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("world-writable policy: %v", err)
	}
	chmod(t, pol, 0o644)
	c, err := LoadLayered(cfg, PolicyFile(pol))
	if err != nil || !strings.Contains(strings.Join(c.AllowedOrigins(), " "), "https://attacker.example") {
		t.Fatalf("the same policy, 0644: %v %v", c.AllowedOrigins(), err)
	}
	chmod(t, filepath.Join(dir, "etc"), 0o777)
	if _, err := LoadLayered(cfg, nil); !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("configuration in a world-writable directory: %v", err)
	}
}

// trustedTempDir is a temporary directory whose parents pass the check
// (the test's temporary directory lives under /tmp, sticky and root's).
func trustedTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	chmod(t, d, 0o755)
	chmod(t, filepath.Dir(d), 0o755)
	return d
}

func mkdir(t *testing.T, d string) {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, d, 0o755)
}

func mkfile(t *testing.T, dir, rel string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	for d := filepath.Dir(p); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
		mkdir(t, d)
	}
	if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, mode)
	return p
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}
