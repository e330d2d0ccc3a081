// Command iconsgen draws the tray icons, one per state, in each OS's format.
//
// It draws PNG (64x64) for Linux, ICO (16, 32 and 48 pixels, 32-bit DIB
// entries) for Windows, and template PNG (44x44, black and alpha only) for
// macOS.
//
//	go generate ./tray/icons    (runs: go run ../internal/iconsgen -out .)
//
// The outputs are committed; a test checks they match what this draws.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
)

// States, as the tray names them (tray.State).
var States = []string{"no_reader", "no_card", "ready", "attention", "blocked", "agent_problem"}

var (
	blue  = color.NRGBA{0x00, 0x5E, 0xB8, 0xFF} // NHS blue
	grey  = color.NRGBA{0x7C, 0x83, 0x8D, 0xFF}
	gold  = color.NRGBA{0xE8, 0xC1, 0x5A, 0xFF}
	green = color.NRGBA{0x23, 0x9B, 0x3E, 0xFF}
	amber = color.NRGBA{0xF2, 0xA9, 0x00, 0xFF}
	red   = color.NRGBA{0xD9, 0x30, 0x25, 0xFF}
	white = color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF}
	dark  = color.NRGBA{0x21, 0x21, 0x21, 0xFF}
	black = color.NRGBA{0, 0, 0, 0xFF}
)

// Geometry in unit coordinates.
var (
	cardShape  = roundRect(0.04, 0.16, 0.84, 0.70, 0.08)
	cardInner  = roundRect(0.11, 0.23, 0.77, 0.63, 0.04)
	chipShape  = roundRect(0.14, 0.30, 0.34, 0.46, 0.03)
	badgeC     = circle(0.72, 0.72, 0.24)
	badgeHalo  = circle(0.72, 0.72, 0.30)
	triShape   = triangle(0.72, 0.44, 0.99, 0.96, 0.45, 0.96)
	triHalo    = triangle(0.72, 0.33, 1.08, 1.02, 0.36, 1.02)
	checkGlyph = union(segment(0.61, 0.73, 0.69, 0.81, 0.035), segment(0.69, 0.81, 0.84, 0.63, 0.035))
	crossGlyph = union(segment(0.64, 0.64, 0.80, 0.80, 0.035), segment(0.80, 0.64, 0.64, 0.80, 0.035))
	barGlyph   = segment(0.62, 0.72, 0.82, 0.72, 0.04)
	bangGlyph  = union(segment(0.72, 0.62, 0.72, 0.78, 0.035), circle(0.72, 0.88, 0.04))
	slash      = segment(0.10, 0.08, 0.82, 0.80, 0.045)
	slashHalo  = segment(0.10, 0.08, 0.82, 0.80, 0.10)
	arrow      = union(segment(0.44, 0.30, 0.44, 0.50, 0.04), segment(0.44, 0.54, 0.35, 0.44, 0.04), segment(0.44, 0.54, 0.53, 0.44, 0.04))
)

// draw renders state at n pixels; template draws black and alpha only (the
// macOS menu bar tints it), with glyphs cut out.
func draw(state string, n int, template bool) *image.NRGBA {
	c := newCanvas(n)
	pick := func(col color.NRGBA) color.NRGBA {
		if template {
			return black
		}
		return col
	}
	filledCard := func(body color.NRGBA) {
		c.fill(cardShape, pick(body))
		if template {
			c.erase(chipShape)
		} else {
			c.fill(chipShape, gold)
		}
	}
	hollowCard := func() {
		c.fill(minus(cardShape, cardInner), pick(grey))
	}
	roundBadge := func(bg color.NRGBA, glyph shape, fg color.NRGBA) {
		c.erase(badgeHalo)
		c.fill(badgeC, pick(bg))
		if template {
			c.erase(glyph)
		} else {
			c.fill(glyph, fg)
		}
	}
	switch state {
	case "no_reader":
		hollowCard()
		c.erase(slashHalo)
		c.fill(slash, pick(dark))
	case "no_card":
		hollowCard()
		c.fill(arrow, pick(grey))
	case "ready":
		filledCard(blue)
		roundBadge(green, checkGlyph, white)
	case "attention":
		filledCard(blue)
		c.erase(triHalo)
		c.fill(triShape, pick(amber))
		if template {
			c.erase(bangGlyph)
		} else {
			c.fill(bangGlyph, dark)
		}
	case "blocked":
		filledCard(blue)
		roundBadge(red, crossGlyph, white)
	case "agent_problem":
		filledCard(grey)
		roundBadge(red, barGlyph, white)
	default:
		panic("unknown state " + state)
	}
	return c.image()
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// encodeICO writes an ICO file with one 32-bit DIB entry per image (the
// format every Windows version's LoadImage reads).
func encodeICO(imgs []*image.NRGBA) []byte {
	var dibs [][]byte
	for _, img := range imgs {
		dibs = append(dibs, dib(img))
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&b, le, [3]uint16{0, 1, uint16(len(imgs))}) // reserved, type icon, count
	offset := 6 + 16*len(imgs)
	for i, img := range imgs {
		n := img.Bounds().Dx()
		w := uint8(n)
		if n >= 256 {
			w = 0
		}
		b.Write([]byte{w, w, 0, 0})
		_ = binary.Write(&b, le, uint16(1))  // planes
		_ = binary.Write(&b, le, uint16(32)) // bits per pixel
		_ = binary.Write(&b, le, uint32(len(dibs[i])))
		_ = binary.Write(&b, le, uint32(offset))
		offset += len(dibs[i])
	}
	for _, d := range dibs {
		b.Write(d)
	}
	return b.Bytes()
}

// dib is a BITMAPINFOHEADER, bottom-up BGRA rows, and the 1-bit AND mask.
func dib(img *image.NRGBA) []byte {
	n := img.Bounds().Dx()
	var b bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&b, le, struct {
		Size                   uint32
		Width, Height          int32
		Planes, BitCount       uint16
		Compression, SizeImage uint32
		XPels, YPels           int32
		ClrUsed, ClrImportant  uint32
	}{40, int32(n), int32(2 * n), 1, 32, 0, 0, 0, 0, 0, 0})
	for y := n - 1; y >= 0; y-- {
		for x := range n {
			p := img.NRGBAAt(x, y)
			b.Write([]byte{p.B, p.G, p.R, p.A})
		}
	}
	stride := ((n + 31) / 32) * 4
	for y := n - 1; y >= 0; y-- {
		row := make([]byte, stride)
		for x := range n {
			if img.NRGBAAt(x, y).A == 0 {
				row[x/8] |= 0x80 >> (x % 8)
			}
		}
		b.Write(row)
	}
	return b.Bytes()
}

// Files returns every output file (path relative to the icons directory) and its bytes.
func Files() map[string][]byte {
	out := map[string][]byte{}
	for _, s := range States {
		out[filepath.Join("png", s+".png")] = encodePNG(draw(s, 64, false))
		out[filepath.Join("template", s+".png")] = encodePNG(draw(s, 44, true))
		out[filepath.Join("ico", s+".ico")] = encodeICO([]*image.NRGBA{draw(s, 16, false), draw(s, 32, false), draw(s, 48, false)})
	}
	return out
}

func main() {
	dir := flag.String("out", ".", "the tray/icons directory")
	flag.Parse()
	for name, data := range Files() {
		p := filepath.Join(*dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
