package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// MaxFileSize is the largest configuration file read.
const MaxFileSize = 1 << 20

// Error is one problem with a configuration: a file that is not valid JSON,
// an unknown key, or a bad value. Validate and Load may return several,
// joined with errors.Join; errors.As finds the first.
type Error struct {
	// Source is the file (or other source) the problem is in; "" when unknown.
	Source string
	// Line and Column locate the problem in Source (1-based); 0 when unknown.
	Line, Column int
	// Key is the dotted key path ("listen.port", "environments.live.origins[0]"); "" for syntax errors.
	Key string
	// Msg says what is wrong and what is allowed.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the configuration file at path over the defaults and validates
// the result. An empty path means DefaultPath(); a missing file there gives
// the defaults, while a missing file at a path given explicitly (--config) is
// an error.
func Load(path string) (Config, error) {
	if path == "" {
		return load(DefaultPath(), false)
	}
	return load(path, true)
}

func load(path string, explicit bool) (Config, error) {
	data, err := readFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return Default(), nil
		}
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	if err := checkTrusted("configuration file", path, configOwners()); err != nil {
		return Config{}, err
	}
	c, err := Merge(Default(), data, path)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Parse applies data over the defaults and validates the result; source
// names data in messages and in Config.Source.
func Parse(data []byte, source string) (Config, error) {
	c, err := Merge(Default(), data, source)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Merge applies overlay, a JSON object listing the keys it sets, over base
// and returns the result; base is not modified. It rejects what is not
// JSON, unknown keys (names are exact, case included), repeated keys, null
// and values of the wrong type, each with an *Error naming source, line,
// column and key. It does not check values: call Validate on the final
// result, once every layer is applied.
//
// Objects merge key by key; a list (allowed_origins, origins, kinds) and a
// whole environment (environments.NAME) are replaced by the overlay's value.
// Every key the overlay sets is recorded as coming from source. An empty
// overlay (or only white space) changes nothing.
func Merge(base Config, overlay []byte, source string) (Config, error) {
	data, err := trimBOM(overlay)
	if err != nil {
		return Config{}, &Error{Source: source, Msg: err.Error()}
	}
	c := base.clone()
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	w := walker{data: data, source: source, dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber()
	set, err := w.document()
	if err != nil {
		return Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// The walker checked names and types already; this is a backstop.
		return Config{}, &Error{Source: source, Msg: err.Error()}
	}
	if c.sources == nil {
		c.sources = make(map[string]string, len(set))
	}
	for _, k := range set {
		c.sources[k] = source
	}
	c.normalize()
	return c, nil
}

// normalize writes origins in the browser's serialisation (those that can
// be; Validate reports the others) and turns absent lists into empty ones.
func (c *Config) normalize() {
	fix := func(list []string) []string {
		if list == nil {
			return []string{}
		}
		for i, o := range list {
			if n, err := NormalizeOrigin(o); err == nil {
				list[i] = n
			}
		}
		return list
	}
	for name, e := range c.Environments {
		e.Origins = fix(e.Origins)
		e.SigningOrigins = fix(e.SigningOrigins)
		c.Environments[name] = e
	}
	c.ExtraOrigins = fix(c.ExtraOrigins)
	if c.CredentialManagement.Ports == nil {
		c.CredentialManagement.Ports = []int{}
	}
	if c.PKCS11.Kinds == nil {
		c.PKCS11.Kinds = []string{}
	}
	if c.Session.LockCommand == nil {
		c.Session.LockCommand = []string{}
	}
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: file larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

func trimBOM(b []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:], nil // UTF-8 with a byte order mark (Windows Notepad)
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return nil, errors.New("the file is UTF-16 text: save it as UTF-8")
	}
	return b, nil
}

// walker checks a JSON document against Config's shape, token by token, so
// that every problem comes with the full key path and a line and column.
type walker struct {
	data   []byte
	source string
	dec    *json.Decoder
	set    []string
}

func (w *walker) document() ([]string, error) {
	if err := w.value(reflect.TypeFor[Config](), "", true); err != nil {
		return nil, err
	}
	off := w.dec.InputOffset()
	if _, err := w.dec.Token(); err != io.EOF {
		return nil, w.errAt(off, "", "unexpected data after the end of the configuration object")
	}
	return w.set, nil
}

// value reads one value of Go type t at key path; record says whether to
// record path (and the paths inside it) as set.
func (w *walker) value(t reflect.Type, path string, record bool) error {
	off := w.dec.InputOffset()
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err, off)
	}
	if tok == nil {
		return w.errAt(off, path, "null is not allowed: give a value or leave the key out")
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			return w.errAt(off, path, "want an object {...}, got "+describe(tok))
		}
		return w.object(path, func(key string, keyOff int64, p string) error {
			f, ok := fieldByTag(t, key)
			if !ok {
				return w.errAt(keyOff, p, unknownKey(t, key))
			}
			return w.value(f.Type, p, record)
		})
	case reflect.Map:
		if tok != json.Delim('{') {
			return w.errAt(off, path, "want an object {...}, got "+describe(tok))
		}
		return w.object(path, func(key string, keyOff int64, p string) error {
			if record {
				w.set = append(w.set, p) // an entry is replaced as a whole
			}
			return w.value(t.Elem(), p, false)
		})
	case reflect.Slice:
		if tok != json.Delim('[') {
			return w.errAt(off, path, "want a list [...], got "+describe(tok))
		}
		if record {
			w.set = append(w.set, path) // a list is replaced as a whole
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(t.Elem(), sub(path, fmt.Sprintf("[%d]", i)), false); err != nil {
				return err
			}
		}
		if _, err := w.dec.Token(); err != nil {
			return w.syntax(err, w.dec.InputOffset())
		}
		return nil
	case reflect.String:
		if _, ok := tok.(string); !ok {
			return w.errAt(off, path, "want a string in double quotes, got "+describe(tok))
		}
	case reflect.Int:
		n, ok := tok.(json.Number)
		if !ok {
			return w.errAt(off, path, "want a whole number, got "+describe(tok))
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			return w.errAt(off, path, "want a whole number, got "+string(n))
		}
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			return w.errAt(off, path, "want true or false, got "+describe(tok))
		}
	default:
		panic("config: no check for " + t.String())
	}
	if record {
		w.set = append(w.set, path)
	}
	return nil
}

// object reads the members of an object whose '{' was read, calling member
// for each key with the key's offset and its full path.
func (w *walker) object(path string, member func(key string, keyOff int64, p string) error) error {
	seen := map[string]bool{}
	for w.dec.More() {
		keyOff := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err, keyOff)
		}
		key := tok.(string) // the decoder only returns strings in key position
		p := sub(path, key)
		if seen[key] {
			return w.errAt(keyOff, p, "key given twice")
		}
		seen[key] = true
		if err := member(key, keyOff, p); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return w.syntax(err, w.dec.InputOffset())
	}
	return nil
}

func (w *walker) syntax(err error, off int64) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = skipSeparators(w.data, se.Offset) // the decoder's Offset is at the bad byte
		msg := "not valid JSON: " + strings.TrimPrefix(se.Error(), "json: ")
		if off < int64(len(w.data)) {
			switch w.data[off] {
			case '/', '#':
				msg += " (JSON has no comments)"
			case '\'':
				msg += " (JSON strings use double quotes)"
			}
		}
		return w.errAt(off, "", msg)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return w.errAt(int64(len(w.data)), "", "not valid JSON: the file ends too early (a missing } or ]?)")
	}
	return w.errAt(off, "", "not valid JSON: "+err.Error())
}

// errAt makes an *Error at the first token at or after off.
func (w *walker) errAt(off int64, path, msg string) error {
	line, col := position(w.data, off)
	return &Error{Source: w.source, Line: line, Column: col, Key: path, Msg: msg}
}

// position turns a byte offset into a line and a column (both 1-based,
// columns counted in bytes), skipping separators to the next token.
func position(data []byte, off int64) (line, col int) {
	off = skipSeparators(data, off)
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// skipSeparators moves off past white space, commas and colons.
func skipSeparators(data []byte, off int64) int64 {
	off = max(0, min(off, int64(len(data))))
	for off < int64(len(data)) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
		off++
	}
	return off
}

func sub(path, key string) string {
	switch {
	case path == "":
		return key
	case strings.HasPrefix(key, "["):
		return path + key
	}
	return path + "." + key
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "a list"
	case string:
		return "the string " + strconv.Quote(v)
	case json.Number:
		return "the number " + string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(tok)
}

// jsonName is a struct field's key ("" for fields without a json tag).
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); jsonName(f) == key && key != "" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// unknownKey says a key is unknown, suggesting the closest known one.
func unknownKey(t reflect.Type, key string) string {
	var names []string
	best, bestDist := "", 3
	for i := range t.NumField() {
		n := jsonName(t.Field(i))
		if n == "" {
			continue
		}
		names = append(names, n)
		if strings.EqualFold(n, key) {
			best, bestDist = n, 0
		} else if d := distance(strings.ToLower(n), strings.ToLower(key)); d < bestDist {
			best, bestDist = n, d
		}
	}
	sort.Strings(names)
	msg := "unknown key " + strconv.Quote(key)
	if best != "" {
		msg += " (did you mean " + strconv.Quote(best) + "?)"
	}
	return msg + "; known keys here: " + strings.Join(names, ", ")
}

// distance is the Levenshtein distance between a and b (short strings only).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func quote(s string) string { return strconv.Quote(s) }
