package prompt

// The few pieces of the Assuan protocol (GnuPG's IPC, spoken by pinentry)
// that asking for a PIN needs: a bounded line reader that can be wiped, the
// server's responses, and percent-encoding both ways.
//
// A client sends one command per line ("SETDESC text"); in arguments "%",
// CR and LF (we also escape every other control byte) are written %XX. The
// server answers with "OK [text]" or "ERR code [text]", possibly after data
// lines "D data" (percent-encoded the same way), status lines "S ...",
// comments "# ..." and inquiries "INQUIRE keyword".

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

const (
	// maxLine bounds a line read from the server: Assuan's own limit is
	// 1000 bytes; a longer line is an error, so a broken program cannot make
	// the agent allocate without limit.
	maxLine = 4096
	// maxCommand is the longest command line a server accepts (libassuan's
	// ASSUAN_LINELENGTH without the line end).
	maxCommand = 1000
)

var (
	errLineTooLong = errors.New("line longer than 4096 bytes")
	errBadEscape   = errors.New("bad %XX escape")
)

// assuanReader reads lines into one fixed buffer, so nothing read (the PIN
// included) is copied anywhere the reader does not know about; wipe zeroes it.
type assuanReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
}

func newAssuanReader(r io.Reader) *assuanReader {
	return &assuanReader{r: r, buf: make([]byte, maxLine)}
}

// readLine returns the next line without its "\n" (and a "\r" before it).
// The line is only valid until the next call; it may be modified in place.
func (a *assuanReader) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(a.buf[a.start:a.end], '\n'); i >= 0 {
			line := a.buf[a.start : a.start+i]
			a.start += i + 1
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if a.start > 0 { // move the partial line to the front, wiping what it leaves
			n := copy(a.buf, a.buf[a.start:a.end])
			clear(a.buf[n:a.end])
			a.start, a.end = 0, n
		}
		if a.end == len(a.buf) {
			return nil, errLineTooLong
		}
		n, err := a.r.Read(a.buf[a.end:])
		a.end += n
		if err != nil && n == 0 {
			if err == io.EOF && a.end > a.start {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// wipe zeroes everything the reader holds.
func (a *assuanReader) wipe() {
	clear(a.buf)
	a.start, a.end = 0, 0
}

// Response kinds.
const (
	respOK = iota
	respErr
	respData
	respStatus
	respComment
	respInquire
	respUnknown
)

// parseResponse splits a server line into its kind and the rest of the line
// (after the keyword and one space).
func parseResponse(line []byte) (kind int, rest []byte) {
	word, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(word) {
	case "OK":
		return respOK, rest
	case "ERR":
		return respErr, rest
	case "D":
		return respData, rest
	case "S":
		return respStatus, rest
	case "INQUIRE":
		return respInquire, rest
	}
	if len(line) > 0 && line[0] == '#' {
		return respComment, line[1:]
	}
	return respUnknown, line
}

// assuanError is an "ERR code description" answer.
type assuanError struct {
	Code uint32 // gpg-error value: source << 24 | code
	Desc string
}

func (e *assuanError) Error() string {
	if e.Desc == "" {
		return fmt.Sprintf("error %d", e.Code)
	}
	return fmt.Sprintf("error %d (%s)", e.Code, e.Desc)
}

// gpg-error codes (the low 16 bits of Code) a pinentry returns.
const (
	gpgErrTimeout       = 62
	gpgErrCanceled      = 99
	gpgErrFullyCanceled = 198
)

// parseErr reads the rest of an ERR line.
func parseErr(rest []byte) *assuanError {
	code, desc, _ := bytes.Cut(rest, []byte{' '})
	n, err := strconv.ParseUint(string(code), 10, 32)
	if err != nil {
		return &assuanError{Desc: printable(rest, 200)}
	}
	return &assuanError{Code: uint32(n), Desc: printable(desc, 200)}
}

// percentDecode decodes %XX escapes in place and returns the decoded part of b.
func percentDecode(b []byte) ([]byte, error) {
	j := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' {
			if i+2 >= len(b) {
				return nil, errBadEscape
			}
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return nil, errBadEscape
			}
			c = hi<<4 | lo
			i += 2
		}
		b[j] = c
		j++
	}
	clear(b[j:]) // the tail held escapes of what is now at the front
	return b[:j], nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// command builds "NAME arg\n" with arg percent-encoded, cut at a character
// boundary so the line stays within maxCommand bytes.
func command(name, arg string) []byte {
	const hexDigits = "0123456789ABCDEF"
	line := make([]byte, 0, maxCommand+1)
	line = append(line, name...)
	if arg != "" {
		line = append(line, ' ')
	}
	for _, r := range arg {
		var enc [utf8.UTFMax * 3]byte
		e := enc[:0]
		if r < 0x20 || r == 0x7f || r == '%' {
			e = append(e, '%', hexDigits[r>>4], hexDigits[r&0xf])
		} else {
			e = utf8.AppendRune(e, r)
		}
		if len(line)+len(e) > maxCommand {
			break
		}
		line = append(line, e...)
	}
	return append(line, '\n')
}

// printable keeps at most n bytes of b with control characters replaced,
// for text from the server that goes into an error message.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
