package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedIconsAreCurrent fails when the committed icons differ from
// what the generator draws: run `go generate ./tray/icons`.
func TestCommittedIconsAreCurrent(t *testing.T) {
	files := Files()
	if len(files) != 3*len(States) {
		t.Fatalf("%d files for %d states", len(files), len(States))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", "icons", name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./tray/icons)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./tray/icons", name)
		}
	}
}

// TestStatesLookDifferent checks every state's icon differs from every
// other's in enough pixels to tell them apart, in colour and in the
// monochrome template.
func TestStatesLookDifferent(t *testing.T) {
	for _, template := range []bool{false, true} {
		imgs := map[string][]byte{}
		for _, s := range States {
			n := 32 // the Windows tray size
			if template {
				n = 44 // the macOS menu-bar size (22 points at 2x)
			}
			img := draw(s, n, template)
			opaque := 0
			for i := 3; i < len(img.Pix); i += 4 {
				if img.Pix[i] > 128 {
					opaque++
				}
			}
			if opaque < 100 {
				t.Errorf("%s (template %v): only %d opaque pixels", s, template, opaque)
			}
			imgs[s] = img.Pix
		}
		for i, a := range States {
			for _, b := range States[i+1:] {
				diff := 0
				pa, pb := imgs[a], imgs[b]
				for k := 0; k < len(pa); k += 4 {
					if absDiff(pa[k:k+4], pb[k:k+4]) > 96 {
						diff++
					}
				}
				if diff < 40 {
					t.Errorf("%s and %s (template %v) differ in only %d pixels", a, b, template, diff)
				}
			}
		}
	}
}

func absDiff(a, b []byte) int {
	d := 0
	for i := range a {
		x := int(a[i]) - int(b[i])
		if x < 0 {
			x = -x
		}
		d += x
	}
	return d
}

func TestOutputsDecode(t *testing.T) {
	for name, data := range Files() {
		if filepath.Ext(name) == ".png" {
			if _, err := png.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		// ICO: header, 3 entries, each DIB header says 32 bpp and double height.
		if len(data) < 6+3*16 || data[2] != 1 || data[4] != 3 {
			t.Errorf("%s: bad ICO header % x", name, data[:6])
			continue
		}
		for i := range 3 {
			e := data[6+16*i:]
			size := int(e[8]) | int(e[9])<<8 | int(e[10])<<16
			off := int(e[12]) | int(e[13])<<8 | int(e[14])<<16
			if off+size > len(data) || data[off] != 40 || int(data[off+4]) != int(e[0]) || int(data[off+8]) != 2*int(e[0]) {
				t.Errorf("%s: entry %d malformed", name, i)
			}
		}
	}
}
