// Package icons holds the tray icons, one per tray state, in each OS's
// format.
//
// They are drawn by tray/internal/iconsgen; regenerate with
//
//	go generate ./tray/icons
package icons

import "embed"

//go:generate go run ../internal/iconsgen -out .

//go:embed png/*.png ico/*.ico template/*.png
var files embed.FS

// PNG is the Linux icon for state (64x64 PNG), nil for an unknown state.
func PNG(state string) []byte { return read("png/" + state + ".png") }

// ICO is the Windows icon for state (16, 32 and 48 pixels).
func ICO(state string) []byte { return read("ico/" + state + ".ico") }

// Template is the macOS menu-bar template icon for state (44x44, black and alpha).
func Template(state string) []byte { return read("template/" + state + ".png") }

func read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}
