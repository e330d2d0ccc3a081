// Package plist reads Apple XML property lists into Go values.
//
// It reads managed preferences, LaunchAgents and configuration profiles:
// dict as map[string]any, array as []any, string, integer as int64, real as
// float64, true/false as bool, date as time.Time, data as []byte.
//
// Binary property lists (they start with "bplist") are not parsed:
// Parse returns ErrBinary, and the caller converts the file with
// `plutil -convert xml1` (always there on macOS) first.
package plist

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrBinary is a binary property list.
var ErrBinary = errors.New("binary property list: convert it with plutil -convert xml1 first")

// MaxDepth bounds nesting, so a hostile file cannot exhaust the stack.
const MaxDepth = 64

// Parse reads an XML property list and returns its top-level value.
func Parse(data []byte) (any, error) {
	if bytes.HasPrefix(data, []byte("bplist")) {
		return nil, ErrBinary
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	// The DOCTYPE names Apple's DTD; nothing is fetched.
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return nil, errors.New("plist: no <plist> element")
			}
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("plist: root element is <%s>, want <plist>", se.Name.Local)
			}
			break
		}
	}
	start, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	if start == nil {
		return nil, errors.New("plist: empty <plist>")
	}
	v, err := value(d, *start, 0)
	if err != nil {
		return nil, err
	}
	// The rest must be the closing </plist> (and trailing white space or comments).
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return v, nil
		}
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if _, ok := tok.(xml.StartElement); ok {
			return nil, errors.New("plist: more than one top-level value")
		}
	}
}

// nextStart returns the next start element, or nil at an end element.
func nextStart(d *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("plist: unexpected text %q", truncate(string(t)))
			}
		}
	}
}

func value(d *xml.Decoder, se xml.StartElement, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, errors.New("plist: nested too deeply")
	}
	switch se.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if k == nil {
				return m, nil
			}
			if k.Name.Local != "key" {
				return nil, fmt.Errorf("plist: <%s> in a dict where a <key> belongs", k.Name.Local)
			}
			key, err := text(d)
			if err != nil {
				return nil, err
			}
			vs, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if vs == nil {
				return nil, fmt.Errorf("plist: key %q has no value", key)
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("plist: key %q given twice", key)
			}
			v, err := value(d, *vs, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
	case "array":
		a := []any{}
		for {
			vs, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if vs == nil {
				return a, nil
			}
			v, err := value(d, *vs, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "string":
		return text(d)
	case "integer":
		s, err := text(d)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("plist: bad <integer> %q", truncate(s))
		}
		return n, nil
	case "real":
		s, err := text(d)
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("plist: bad <real> %q", truncate(s))
		}
		return f, nil
	case "true", "false":
		if s, err := text(d); err != nil {
			return nil, err
		} else if strings.TrimSpace(s) != "" {
			return nil, fmt.Errorf("plist: <%s/> has content", se.Name.Local)
		}
		return se.Name.Local == "true", nil
	case "date":
		s, err := text(d)
		if err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("plist: bad <date> %q", truncate(s))
		}
		return t, nil
	case "data":
		s, err := text(d)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, errors.New("plist: bad base64 in <data>")
		}
		return b, nil
	}
	return nil, fmt.Errorf("plist: unknown element <%s>", se.Name.Local)
}

// text reads character data up to the current element's end.
func text(d *xml.Decoder) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", fmt.Errorf("plist: <%s> inside a text value", t.Name.Local)
		}
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
