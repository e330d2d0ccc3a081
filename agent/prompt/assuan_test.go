package prompt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func TestAssuanReader(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		lines []string
		err   error // after the lines
	}{
		{"lines", "OK hello\nD 12%2534\nOK\n", []string{"OK hello", "D 12%2534", "OK"}, io.EOF},
		{"CRLF", "OK\r\nERR 1 x\r\n", []string{"OK", "ERR 1 x"}, io.EOF},
		{"empty line", "\nOK\n", []string{"", "OK"}, io.EOF},
		{"cut off", "OK\nD 1234", []string{"OK"}, io.ErrUnexpectedEOF},
		{"longest line", strings.Repeat("x", maxLine-1) + "\nOK\n", []string{strings.Repeat("x", maxLine-1), "OK"}, io.EOF},
		{"too long", strings.Repeat("x", maxLine) + "\n", nil, errLineTooLong},
		{"too long after a line", "OK\n" + strings.Repeat("x", maxLine+10), []string{"OK"}, errLineTooLong},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			name := tc.name
			var r io.Reader = strings.NewReader(tc.in)
			if oneByte {
				name += " one byte at a time"
				r = iotest.OneByteReader(r)
			}
			t.Run(name, func(t *testing.T) {
				rd := newAssuanReader(r)
				for _, want := range tc.lines {
					got, err := rd.readLine()
					if err != nil || string(got) != want {
						t.Fatalf("readLine() = %.40q, %v; want %.40q", got, err, want)
					}
				}
				if _, err := rd.readLine(); !errors.Is(err, tc.err) {
					t.Fatalf("readLine() error %v, want %v", err, tc.err)
				}
				rd.wipe()
				if bytes.ContainsFunc(rd.buf, func(r rune) bool { return r != 0 }) {
					t.Fatal("wipe left data in the buffer")
				}
			})
		}
	}
}

// TestAssuanReaderWipesConsumedLines: a line read (the PIN's data line) does
// not stay behind in the buffer when later lines are read.
func TestAssuanReaderWipesConsumedLines(t *testing.T) {
	in := "D 739146\n" + strings.Repeat("S x\n", 2000) + "OK\n"
	rd := newAssuanReader(iotest.HalfReader(strings.NewReader(in)))
	for {
		line, err := rd.readLine()
		if err != nil {
			t.Fatal(err)
		}
		if string(line) == "OK" {
			break
		}
	}
	if bytes.Contains(rd.buf, []byte("739146")) {
		t.Fatal("a consumed line is still in the reader's buffer")
	}
}

func TestPercentDecode(t *testing.T) {
	cases := []struct {
		in, want string
		err      bool
	}{
		{"123456", "123456", false},
		{"12%2534", "12%34", false},
		{"%0D%0a%25", "\r\n%", false},
		{"", "", false},
		{"a+b", "a+b", false},
		{"%", "", true},
		{"%2", "", true},
		{"%zz", "", true},
		{"12%G0", "", true},
	}
	for _, tc := range cases {
		b := []byte(tc.in)
		got, err := percentDecode(b)
		if (err != nil) != tc.err || (!tc.err && string(got) != tc.want) {
			t.Errorf("percentDecode(%q) = %q, %v", tc.in, got, err)
		}
		if !tc.err && bytes.ContainsAny(b[len(got):], "0123456789%") {
			t.Errorf("percentDecode(%q) left %q after the decoded part", tc.in, b[len(got):])
		}
	}
}

func TestParseResponse(t *testing.T) {
	cases := []struct {
		in   string
		kind int
		rest string
	}{
		{"OK", respOK, ""},
		{"OK Pleased to meet you", respOK, "Pleased to meet you"},
		{"ERR 83886179 Operation cancelled <Pinentry>", respErr, "83886179 Operation cancelled <Pinentry>"},
		{"D 1234", respData, "1234"},
		{"D ", respData, ""},
		{"S PROGRESS x", respStatus, "PROGRESS x"},
		{"# comment", respComment, " comment"},
		{"INQUIRE QUALITY 12", respInquire, "QUALITY 12"},
		{"OKAY", respUnknown, "OKAY"},
		{"", respUnknown, ""},
	}
	for _, tc := range cases {
		kind, rest := parseResponse([]byte(tc.in))
		if kind != tc.kind || string(rest) != tc.rest {
			t.Errorf("parseResponse(%q) = %d, %q; want %d, %q", tc.in, kind, rest, tc.kind, tc.rest)
		}
	}
	e := parseErr([]byte("83886179 Operation cancelled <Pinentry>"))
	if e.Code != 83886179 || e.Code&0xffff != gpgErrCanceled || e.Desc != "Operation cancelled <Pinentry>" {
		t.Errorf("parseErr = %+v", e)
	}
	if e := parseErr([]byte("bogus\x01")); e.Code != 0 || e.Desc != "bogus " {
		t.Errorf("parseErr(bogus) = %+v", e)
	}
}

func TestCommand(t *testing.T) {
	cases := []struct{ name, arg, want string }{
		{"GETPIN", "", "GETPIN\n"},
		{"SETDESC", "a\nb%c\r", "SETDESC a%0Ab%25c%0D\n"},
		{"SETDESC", "tab\there\x7f", "SETDESC tab%09here%7F\n"},
		{"SETDESC", "Zoë", "SETDESC Zoë\n"},
	}
	for _, tc := range cases {
		if got := string(command(tc.name, tc.arg)); got != tc.want {
			t.Errorf("command(%q, %q) = %q, want %q", tc.name, tc.arg, got, tc.want)
		}
	}
	for _, arg := range []string{strings.Repeat("é", 2000), strings.Repeat("\n", 2000), strings.Repeat("a", 2000)} {
		line := command("SETDESC", arg)
		if len(line)-1 > maxCommand || len(line) < maxCommand-3 {
			t.Errorf("command line of %d bytes for a long argument, want at most %d and close to it", len(line)-1, maxCommand)
		}
		if !utf8.Valid(line) || bytes.HasSuffix(line[:len(line)-1], []byte("%")) || bytes.HasSuffix(line[:len(line)-1], []byte("%0")) {
			t.Errorf("command cut inside a character or escape: ...%q", line[len(line)-8:])
		}
	}
}

// FuzzAssuanReader feeds arbitrary server output through the reader, the
// response parser and the data decoder: nothing panics, lines stay within
// the bound, and decoding never grows data.
func FuzzAssuanReader(f *testing.F) {
	for _, s := range []string{
		"OK Pleased to meet you\nOK\nD 12%2534\nOK\n",
		"ERR 83886179 Operation cancelled <Pinentry>\n",
		"S x\n# c\nINQUIRE QUALITY\nD %\nD %zz\nOK\r\n",
		"D " + strings.Repeat("9", 100) + "\n",
		"\n\n\nOK",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := newAssuanReader(bytes.NewReader(in))
		for {
			line, err := rd.readLine()
			if err != nil {
				break
			}
			if len(line) >= maxLine {
				t.Fatalf("line of %d bytes", len(line))
			}
			kind, rest := parseResponse(line)
			switch kind {
			case respData:
				n := len(rest)
				if dec, err := percentDecode(rest); err == nil && len(dec) > n {
					t.Fatalf("decoded %d bytes from %d", len(dec), n)
				}
			case respErr:
				_ = parseErr(rest).Error()
			}
		}
		rd.wipe()
		// The same bytes through the whole PIN reader.
		pin, err := readPIN(newAssuanReader(bytes.NewReader(in)), io.Discard)
		if err == nil && len(pin) > maxPIN {
			t.Fatalf("PIN of %d bytes", len(pin))
		}
	})
}
