package main

import (
	"image"
	"image/color"
	"math"
)

// canvas is a premultiplied RGBA raster in floating point, drawn with
// shapes given as inside-tests in unit coordinates (0..1 both ways) and
// anti-aliased by 4x4 supersampling.
type canvas struct {
	n   int
	pix [][4]float64 // premultiplied r, g, b, a in 0..1
}

func newCanvas(n int) *canvas { return &canvas{n: n, pix: make([][4]float64, n*n)} }

type shape func(x, y float64) bool

const ss = 4 // supersampling per axis

func (c *canvas) coverage(s shape, px, py int) float64 {
	hit := 0
	for j := range ss {
		for i := range ss {
			x := (float64(px) + (float64(i)+0.5)/ss) / float64(c.n)
			y := (float64(py) + (float64(j)+0.5)/ss) / float64(c.n)
			if s(x, y) {
				hit++
			}
		}
	}
	return float64(hit) / (ss * ss)
}

// fill paints s with col ("over" compositing).
func (c *canvas) fill(s shape, col color.NRGBA) {
	a := float64(col.A) / 255
	r, g, b := float64(col.R)/255*a, float64(col.G)/255*a, float64(col.B)/255*a
	for py := range c.n {
		for px := range c.n {
			cov := c.coverage(s, px, py)
			if cov == 0 {
				continue
			}
			p := &c.pix[py*c.n+px]
			k := cov
			p[0] = r*k + p[0]*(1-a*k)
			p[1] = g*k + p[1]*(1-a*k)
			p[2] = b*k + p[2]*(1-a*k)
			p[3] = a*k + p[3]*(1-a*k)
		}
	}
}

// erase cuts s out (destination-out): what is under it becomes transparent.
func (c *canvas) erase(s shape) {
	for py := range c.n {
		for px := range c.n {
			cov := c.coverage(s, px, py)
			if cov == 0 {
				continue
			}
			p := &c.pix[py*c.n+px]
			for i := range p {
				p[i] *= 1 - cov
			}
		}
	}
}

func (c *canvas) image() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, c.n, c.n))
	for i, p := range c.pix {
		a := p[3]
		if a <= 0 {
			continue
		}
		to8 := func(v float64) uint8 { return uint8(math.Round(math.Min(1, math.Max(0, v)) * 255)) }
		img.Pix[4*i+0] = to8(p[0] / a)
		img.Pix[4*i+1] = to8(p[1] / a)
		img.Pix[4*i+2] = to8(p[2] / a)
		img.Pix[4*i+3] = to8(a)
	}
	return img
}

// Shapes.

func roundRect(x0, y0, x1, y1, r float64) shape {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x, x1-r))
		cy := math.Max(y0+r, math.Min(y, y1-r))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
}

func circle(cx, cy, r float64) shape {
	return func(x, y float64) bool { return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r }
}

// segment is a stroke of half-width w from a to b, with round caps.
func segment(ax, ay, bx, by, w float64) shape {
	return func(x, y float64) bool {
		dx, dy := bx-ax, by-ay
		t := ((x-ax)*dx + (y-ay)*dy) / (dx*dx + dy*dy)
		t = math.Max(0, math.Min(1, t))
		px, py := ax+t*dx-x, ay+t*dy-y
		return px*px+py*py <= w*w
	}
}

// triangle with rounded-ish feel: a plain triangle a, b, c.
func triangle(ax, ay, bx, by, cx, cy float64) shape {
	sign := func(px, py, qx, qy, rx, ry float64) float64 { return (px-rx)*(qy-ry) - (qx-rx)*(py-ry) }
	return func(x, y float64) bool {
		d1 := sign(x, y, ax, ay, bx, by)
		d2 := sign(x, y, bx, by, cx, cy)
		d3 := sign(x, y, cx, cy, ax, ay)
		neg := d1 < 0 || d2 < 0 || d3 < 0
		pos := d1 > 0 || d2 > 0 || d3 > 0
		return !(neg && pos)
	}
}

func union(ss ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range ss {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

func minus(a, b shape) shape {
	return func(x, y float64) bool { return a(x, y) && !b(x, y) }
}
