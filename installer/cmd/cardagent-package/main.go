// Command cardagent-package builds cardagent's packages.
//
// It builds a deb and an rpm (nfpm), a Windows MSI (wixl), and the macOS
// package tree (pkgbuild on a Mac finishes it). scripts/package runs it; see
// docs/deployment.md. Each carries two programs, cardagent and the tray icon
// cardagent-tray (built here unless given: a cgo build on Linux,
// -H=windowsgui on Windows).
//
//	cardagent-package [flags] deb|rpm|msi|macos... | all
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cardagent/cardagent/installer/packaging"
	"github.com/cardagent/cardagent/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cardagent-package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cardagent-package", flag.ContinueOnError)
	version := fs.String("version", version.Version, "package version")
	arch := fs.String("arch", runtime.GOARCH, "architecture (deb and rpm: the build machine's unless a cross C compiler is set up; msi: amd64)")
	out := fs.String("out", "dist", "output directory")
	cfg := fs.String("config", "", "configuration file to ship as the default configuration; its allowed origins go into the browser policies")
	binary := fs.String("binary", "", "prebuilt program to package instead of building it (deb, rpm: Linux; msi: cardagent.exe; macos: a macOS build, by default built here for arm64 and amd64 without cgo and joined into a universal program)")
	binaryW := fs.String("binaryw", "", "msi: prebuilt cardagentw.exe (built with -ldflags -H=windowsgui)")
	trayBinary := fs.String("traybinary", "", "prebuilt tray program (cmd/cardagent-tray) instead of building it (deb, rpm: Linux cgo build; msi: cardagent-tray.exe built with -ldflags -H=windowsgui; macos: a cgo build made on a Mac, optional here)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cardagent-package [flags] deb|rpm|msi|macos... | all")
		fs.PrintDefaults()
	}
	// Formats and flags in any order: "deb --version 1.2.3" or "--version 1.2.3 deb".
	var formats []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		formats = append(formats, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(formats) == 0 {
		fs.Usage()
		return errors.New("name a format")
	}
	if len(formats) == 1 && formats[0] == "all" {
		formats = []string{"deb", "rpm", "msi", "macos"}
	}
	o := packaging.Options{Version: *version, Arch: *arch, Config: *cfg, OutDir: *out}
	build := filepath.Join(*out, "build")
	for _, f := range formats {
		start := time.Now()
		o.Binary, o.BinaryW, o.TrayBinary = *binary, *binaryW, *trayBinary
		var path string
		var err error
		switch f {
		case "deb", "rpm":
			dir := filepath.Join(build, "linux-"+*arch)
			if o.Binary == "" {
				if o.Binary, err = goBuild(ctx, agentPkg, "linux", *arch, *version, filepath.Join(dir, "cardagent"), false); err != nil {
					return err
				}
			}
			if o.TrayBinary == "" {
				if o.TrayBinary, err = goBuild(ctx, trayPkg, "linux", *arch, *version, filepath.Join(dir, "cardagent-tray"), false); err != nil {
					return err
				}
			}
			if f == "deb" {
				path, err = packaging.Deb(ctx, o)
			} else {
				path, err = packaging.RPM(ctx, o)
			}
		case "msi":
			o.Arch = "amd64"
			dir := filepath.Join(build, "windows-amd64")
			if o.Binary == "" {
				if o.Binary, err = goBuild(ctx, agentPkg, "windows", "amd64", *version, filepath.Join(dir, "cardagent.exe"), false); err != nil {
					return err
				}
			}
			if o.BinaryW == "" {
				if o.BinaryW, err = goBuild(ctx, agentPkg, "windows", "amd64", *version, filepath.Join(dir, "cardagentw.exe"), true); err != nil {
					return err
				}
			}
			if o.TrayBinary == "" {
				// A GUI-subsystem program: no console window behind the icon.
				if o.TrayBinary, err = goBuild(ctx, trayPkg, "windows", "amd64", *version, filepath.Join(dir, packaging.WindowsTrayExe), true); err != nil {
					return err
				}
			}
			path, err = packaging.MSI(ctx, o)
		case "macos":
			// The agent needs no cgo on macOS (PC/SC through purego): it is
			// built here for both Mac CPUs and joined into one universal
			// program. The tray icon program needs cgo and the macOS SDK:
			// only a prebuilt one is used (README.txt in the tree).
			dir := filepath.Join(build, "darwin")
			if o.Binary == "" {
				var thin []string
				for _, a := range []string{"arm64", "amd64"} {
					p, err := goBuild(ctx, agentPkg, "darwin", a, *version, filepath.Join(dir, "cardagent-"+a), false)
					if err != nil {
						return err
					}
					thin = append(thin, p)
				}
				o.Binary = filepath.Join(dir, "cardagent")
				if err := packaging.UniversalMachO(o.Binary, thin...); err != nil {
					return err
				}
			}
			path, err = packaging.MacOSTree(o)
		default:
			return fmt.Errorf("unknown format %q: want deb, rpm, msi, macos or all", f)
		}
		if err != nil {
			return err
		}
		size := ""
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			size = fmt.Sprintf(", %.1f MB", float64(fi.Size())/1e6)
		}
		fmt.Printf("%s: %s (%.1f s%s)\n", f, path, time.Since(start).Seconds(), size)
	}
	return nil
}

// The programs the packages carry.
const (
	agentPkg = "github.com/cardagent/cardagent/cmd/cardagent"
	trayPkg  = "github.com/cardagent/cardagent/cmd/cardagent-tray"
)

// goBuild builds pkg for goos/arch into out.
func goBuild(ctx context.Context, pkg, goos, arch, version, out string, windowsGUI bool) (string, error) {
	ldflags := "-s -w -X github.com/cardagent/cardagent/version.Version=" + version
	if windowsGUI {
		ldflags += " -H=windowsgui"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+arch)
	if goos == "linux" {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1") // PC/SC through libpcsclite; the tray's GTK
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s for %s/%s: %w", pkg, goos, arch, err)
	}
	return out, nil
}
