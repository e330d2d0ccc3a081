package packaging

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Dependencies of the deb and the rpm. The agent needs the smart-card
// service; only the tray program needs the appindicator library (and GTK 3
// through it), so a server without a desktop can leave it out: the agent
// then logs that cardagent-tray cannot run and serves sign-ins without it.
var (
	debDepends    = []string{"pcscd"}
	debRecommends = []string{"libayatana-appindicator3-1"}
	rpmDepends    = []string{"pcsc-lite"}
	rpmRecommends = []string{"libayatana-appindicator-gtk3"}
)

// Deb builds the Debian package and returns its path.
func Deb(ctx context.Context, o Options) (string, error) {
	return linuxPackage(ctx, o, "deb", debDepends, debRecommends)
}

// RPM builds the RPM package and returns its path.
func RPM(ctx context.Context, o Options) (string, error) {
	return linuxPackage(ctx, o, "rpm", rpmDepends, rpmRecommends)
}

func linuxPackage(_ context.Context, o Options, format string, depends, recommends []string) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	st, err := newStage()
	if err != nil {
		return "", err
	}
	defer st.close()
	payload, scripts, err := linuxPayload(st, o)
	if err != nil {
		return "", err
	}
	var contents files.Contents
	for _, p := range payload {
		c := &files.Content{Source: p.Source, Destination: p.Path, FileInfo: &files.ContentFileInfo{Mode: p.Mode, Owner: "root", Group: "root"}}
		switch {
		case p.Link != "":
			c = &files.Content{Source: p.Link, Destination: p.Path, Type: files.TypeSymlink}
		case p.Config:
			c.Type = files.TypeConfigNoReplace // rpm: %config(noreplace); deb: conffile
		}
		contents = append(contents, c)
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        "cardagent",
		Arch:        o.Arch,
		Platform:    "linux",
		Version:     o.Version,
		Release:     "1",
		Section:     "utils",
		Priority:    "optional",
		Maintainer:  Maintainer,
		Vendor:      Vendor,
		Homepage:    Homepage,
		License:     License,
		Description: Description,
		MTime:       mtime(),
		Overridables: nfpm.Overridables{
			Depends:    depends,
			Recommends: recommends,
			Contents:   contents,
			Scripts: nfpm.Scripts{
				PostInstall: scripts["postinstall"],
				PreRemove:   scripts["preremove"],
				PostRemove:  scripts["postremove"],
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("packaging %s: %w", format, err)
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", fmt.Errorf("packaging %s: %w", format, err)
	}
	out := filepath.Join(o.OutDir, pkg.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", fmt.Errorf("packaging %s: %w", format, err)
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("packaging %s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("packaging %s: %w", format, err)
	}
	return out, nil
}

// mtime is the files' modification time: SOURCE_DATE_EPOCH when set (a
// reproducible build), else now.
func mtime() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}
