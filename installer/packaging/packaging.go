// Package packaging builds cardagent's packages from the templates in
// installer.
//
// It builds deb and rpm with nfpm (as a library), the Windows MSI with wixl
// and msibuild (Debian's msitools), and the macOS package tree that pkgbuild
// turns into a .pkg on a Mac.
//
// Every package carries the same things: the program, the tray program
// next to it (cardagent-tray, which alone links the GUI library), the per-user
// autostart (installer.AutostartFor), the default configuration and the
// browser policies generated from its allowed origins.
package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/installer"
)

// Options describe one package build.
type Options struct {
	// Version is the package version ("1.2.3", "0.1.0-dev").
	Version string
	// Arch is the Go architecture (amd64, arm64); default amd64.
	Arch string
	// Binary is the program to package: a Linux build for deb and rpm,
	// cardagent.exe for the MSI, a macOS build (optional) for the tree.
	Binary string
	// BinaryW is the Windows windowless build (-ldflags -H=windowsgui),
	// cardagentw.exe, which the Run key starts (MSI only).
	BinaryW string
	// TrayBinary is the tray program, cmd/cardagent-tray, installed next
	// to the program (the agent starts it from there): a Linux cgo build
	// for deb and rpm, cardagent-tray.exe built with -ldflags -H=windowsgui
	// for the MSI, a macOS build (optional, as Binary) for the tree.
	TrayBinary string
	// Config is a configuration file to ship as the default configuration
	// (its allowed origins also go into the browser policies); "" ships
	// installer/templates/config/config.json.
	Config string
	// OutDir receives the package (created if needed).
	OutDir string
}

// Where the packages install the tray program: next to the program,
// where the agent looks for it (trayproto.FindProgram).
const (
	LinuxTrayBinary = "/usr/bin/cardagent-tray"
	MacTrayBinary   = "/usr/local/bin/cardagent-tray"
	WindowsTrayExe  = "cardagent-tray.exe"
)

// Package metadata.
const (
	Maintainer  = "cardagent maintainers <cardagent@users.noreply.github.com>"
	Vendor      = "cardagent"
	Homepage    = "https://github.com/cardagent/cardagent"
	License     = "Apache-2.0"
	Description = "Smart-card sign-in agent for web pages (NHS smartcards: series 8, 9 and 10).\n" +
		"Runs in each user's session, asks for the PIN itself and signs an origin-bound\n" +
		"challenge for the sign-in page over a loopback WebSocket."
)

func (o *Options) check() error {
	if o.Version == "" {
		return errors.New("packaging: no version")
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.OutDir == "" {
		return errors.New("packaging: no output directory")
	}
	return os.MkdirAll(o.OutDir, 0o755)
}

// defaultConfig returns the configuration to ship and the origins the
// browser policies allow (the active environment's plus allowed_origins).
func (o *Options) defaultConfig() (data []byte, origins []string, source string, err error) {
	if o.Config != "" {
		data, err = os.ReadFile(o.Config)
		source = o.Config
	} else {
		data, err = installer.Template("config/config.json")
		source = "the default configuration"
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("packaging: %w", err)
	}
	c, err := config.Parse(data, source)
	if err != nil {
		return nil, nil, "", fmt.Errorf("packaging: %w", err)
	}
	return data, c.PageOrigins(), source + " (environment " + c.Environment + ")", nil
}

// stage is a directory of rendered files the package tools read.
type stage struct{ dir string }

func newStage() (*stage, error) {
	d, err := os.MkdirTemp("", "cardagent-package-")
	if err != nil {
		return nil, fmt.Errorf("packaging: %w", err)
	}
	return &stage{dir: d}, nil
}

func (s *stage) close() { os.RemoveAll(s.dir) }

// put writes data at the target path p inside the stage and returns its
// path on disk.
func (s *stage) put(p string, data []byte, mode fs.FileMode) (string, error) {
	dst := filepath.Join(s.dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("packaging: %w", err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return "", fmt.Errorf("packaging: %w", err)
	}
	return dst, os.Chmod(dst, mode)
}

// Payload is one entry of a Linux package.
type Payload struct {
	Path   string // absolute path on the target system
	Source string // file on disk ("" for links)
	Link   string // link target for symbolic links
	Mode   fs.FileMode
	Config bool // a configuration file the administrator may edit
}

// linuxPayload renders everything the deb and rpm install into st.
func linuxPayload(st *stage, o Options) (payload []Payload, scripts map[string]string, err error) {
	if o.Binary == "" {
		return nil, nil, errors.New("packaging: no Linux binary (Options.Binary)")
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, nil, fmt.Errorf("packaging: %w", err)
	}
	if o.TrayBinary == "" {
		return nil, nil, errors.New("packaging: no Linux tray program (Options.TrayBinary, cmd/cardagent-tray)")
	}
	if _, err := os.Stat(o.TrayBinary); err != nil {
		return nil, nil, fmt.Errorf("packaging: %w", err)
	}
	payload = append(payload,
		Payload{Path: installer.LinuxBinary, Source: o.Binary, Mode: 0o755},
		Payload{Path: LinuxTrayBinary, Source: o.TrayBinary, Mode: 0o755})

	auto, err := installer.AutostartFor("linux", installer.LinuxBinary, installer.ByPackage)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range auto.Files {
		src, err := st.put(f.Path, f.Data, f.Mode)
		if err != nil {
			return nil, nil, err
		}
		payload = append(payload, Payload{Path: f.Path, Source: src, Mode: f.Mode})
	}
	for _, l := range auto.Links {
		payload = append(payload, Payload{Path: l.Path, Link: l.Target})
	}

	cfg, origins, source, err := o.defaultConfig()
	if err != nil {
		return nil, nil, err
	}
	cfgPath := installer.LinuxConfigDir + "/config.json"
	src, err := st.put(cfgPath, cfg, 0o644)
	if err != nil {
		return nil, nil, err
	}
	payload = append(payload, Payload{Path: cfgPath, Source: src, Mode: 0o644, Config: true})

	for _, pf := range installer.LinuxPolicyFiles {
		data, err := installer.BrowserPolicy(pf.Format, origins, source)
		if err != nil {
			return nil, nil, err
		}
		p := pf.Path
		cfgFile := true
		if pf.Format == installer.FormatFirefox {
			// Firefox has one policies.json for everything: the package
			// ships a copy and postinstall installs it only where none exists.
			p, cfgFile = installer.FirefoxPolicySource, false
		}
		src, err := st.put(p, data, 0o644)
		if err != nil {
			return nil, nil, err
		}
		payload = append(payload, Payload{Path: p, Source: src, Mode: 0o644, Config: cfgFile})
	}

	data := map[string]string{
		"Unit":          installer.LinuxUnit,
		"ConfigDir":     installer.LinuxConfigDir,
		"FirefoxPolicy": firefoxPolicyPath(),
		"FirefoxSource": installer.FirefoxPolicySource,
	}
	scripts = map[string]string{}
	for _, name := range []string{"postinstall", "preremove", "postremove"} {
		b, err := installer.Render("linux/"+name+".sh", data)
		if err != nil {
			return nil, nil, err
		}
		if scripts[name], err = st.put("scripts/"+name+".sh", b, 0o755); err != nil {
			return nil, nil, err
		}
	}
	return payload, scripts, nil
}

func firefoxPolicyPath() string {
	for _, pf := range installer.LinuxPolicyFiles {
		if pf.Format == installer.FormatFirefox {
			return pf.Path
		}
	}
	return ""
}

// LinuxPayload lists what the deb and rpm install (for tests and docs);
// Source fields point into a directory the caller removes with cleanup.
func LinuxPayload(o Options) (payload []Payload, cleanup func(), err error) {
	st, err := newStage()
	if err != nil {
		return nil, nil, err
	}
	payload, _, err = linuxPayload(st, o)
	if err != nil {
		st.close()
		return nil, nil, err
	}
	return payload, st.close, nil
}

// run runs a tool in dir ("" for the current directory) and wraps its
// output into the error.
func run(ctx context.Context, dir, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s is not installed (Debian: apt-get install msitools wixl): %w", name, err)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

var numericVersion = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// msiVersion is the numeric part of a version (MSI ProductVersion is
// major.minor.build, each a number).
func msiVersion(v string) (string, error) {
	m := numericVersion.FindString(strings.TrimPrefix(v, "v"))
	if m == "" {
		return "", fmt.Errorf("packaging: version %q does not start with major.minor.patch", v)
	}
	return m, nil
}
