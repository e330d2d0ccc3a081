// Command scripted is a pinentry for tests.
//
// It speaks enough of the Assuan protocol (as GnuPG's pinentry does) for
// cardagent's prompt, answers GETPIN as told, and records what the user
// would have been shown.
//
// Build it with `go build -o DIR/scripted ./testdata/pinentry/scripted` (from
// the module root) and point prompt.Pinentry (or the agent's prompt.pinentry)
// at it. Each setting is a flag or, when the flag is absent, an environment
// variable, so an agent started by a test can be steered through its
// environment:
//
//	-action  SCRIPTED_PINENTRY_ACTION  what GETPIN does (default "pin"):
//	         pin           answer -pin
//	         cancel        ERR 83886179 Operation cancelled (the user pressed Cancel)
//	         timeout       ERR 83886142 Timeout (pinentry's own timeout)
//	         error         ERR 83918950 Inappropriate ioctl for device (no display)
//	         hang          never answer (until killed)
//	         crash         exit 1 without answering
//	         garbage       send an 8 KiB line
//	         pin-then-err  send the PIN as data, then ERR
//	         ignore-bye    answer -pin, then ignore BYE and stay running
//	         no-greeting   exit 1 before the greeting
//	         CONFIRM (a card choice) answers OK for "pin" and "ok", the Cancel
//	         button for "cancel", the "not OK" button for "notok"; "timeout",
//	         "hang" and "crash" act as for GETPIN
//	-pin     SCRIPTED_PINENTRY_PIN     the PIN to answer (default "123456")
//	-delay   SCRIPTED_PINENTRY_DELAY   wait this long before answering GETPIN (e.g. "200ms")
//	-record  SCRIPTED_PINENTRY_RECORD  append one JSON line per GETPIN to this file: pid, title,
//	         desc, prompt, error, timeout, the commands received in order, and the action taken
//	-queue   SCRIPTED_PINENTRY_QUEUE   a file of "action [pin]" lines: each run takes (and removes)
//	         the first line, overriding -action and -pin; when it is empty they apply. Not safe for
//	         prompts running at the same time.
//
// Like libassuan it refuses a command line longer than 1000 bytes.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Record is one prompt as the user would have seen it.
type Record struct {
	PID      int      `json:"pid"`
	Title    string   `json:"title"`
	Desc     string   `json:"desc"`
	Prompt   string   `json:"prompt"`
	Error    string   `json:"error"`
	Timeout  string   `json:"timeout"`
	OK       string   `json:"ok,omitempty"`     // SETOK's label
	Cancel   string   `json:"cancel,omitempty"` // SETCANCEL's label
	Commands []string `json:"commands"`
	Action   string   `json:"action"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scripted pinentry:", err)
		os.Exit(2)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("SCRIPTED_PINENTRY_" + name); ok {
		return v
	}
	return def
}

func run() error {
	fs := flag.NewFlagSet("scripted", flag.ContinueOnError)
	action := fs.String("action", env("ACTION", "pin"), "what GETPIN does")
	pin := fs.String("pin", env("PIN", "123456"), "PIN to answer")
	delayStr := fs.String("delay", env("DELAY", "0s"), "wait before answering GETPIN")
	record := fs.String("record", env("RECORD", ""), "file to append records to")
	queue := fs.String("queue", env("QUEUE", ""), "file of per-run actions")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	delay, err := time.ParseDuration(*delayStr)
	if err != nil {
		return err
	}
	if *queue != "" {
		a, p, ok, err := takeQueued(*queue)
		if err != nil {
			return err
		}
		if ok {
			*action = a
			if p != "" {
				*pin = p
			}
		}
	}
	if *action == "no-greeting" {
		os.Exit(1)
	}

	out := bufio.NewWriter(os.Stdout)
	send := func(lines ...string) {
		for _, l := range lines {
			out.WriteString(l + "\n")
		}
		out.Flush()
	}
	send(fmt.Sprintf("OK Pleased to meet you, process %d", os.Getpid()))
	rec := Record{PID: os.Getpid()}
	in := bufio.NewReaderSize(os.Stdin, 4096)
	for {
		line, err := readLine(in)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, errTooLong) {
			send("ERR 536870922 Line too long <User defined source 1>")
			continue
		}
		if err != nil {
			return err
		}
		name, arg, _ := strings.Cut(line, " ")
		rec.Commands = append(rec.Commands, name)
		text, err := decode(arg)
		if err != nil {
			send("ERR 536870918 Invalid value <User defined source 1>")
			continue
		}
		switch name {
		case "OPTION", "SETNOTOK", "SETKEYINFO", "SETREPEAT", "SETQUALITYBAR":
			send("OK")
		case "SETOK":
			rec.OK = text
			send("OK")
		case "SETCANCEL":
			rec.Cancel = text
			send("OK")
		case "SETTITLE":
			rec.Title = text
			send("OK")
		case "SETDESC":
			rec.Desc = text
			send("OK")
		case "SETPROMPT":
			rec.Prompt = text
			send("OK")
		case "SETERROR":
			rec.Error = text
			send("OK")
		case "SETTIMEOUT":
			rec.Timeout = text
			send("OK")
		case "GETINFO":
			send("D 1.2.1", "OK")
		case "BYE":
			if *action == "ignore-bye" {
				time.Sleep(time.Hour)
			}
			send("OK closing connection")
			return nil
		case "CONFIRM":
			rec.Action = *action
			if *record != "" {
				if err := appendRecord(*record, rec); err != nil {
					return err
				}
			}
			time.Sleep(delay)
			switch *action {
			case "pin", "ok":
				send("OK")
			case "cancel":
				send("ERR 83886179 Operation cancelled <Pinentry>")
			case "notok":
				send("ERR 83886194 Not confirmed <Pinentry>")
			case "timeout":
				send("ERR 83886142 Timeout <Pinentry>")
			case "hang":
				time.Sleep(time.Hour)
			case "crash":
				os.Exit(1)
			default:
				return fmt.Errorf("unknown action %q for CONFIRM", *action)
			}
		case "GETPIN":
			rec.Action = *action
			if *record != "" {
				if err := appendRecord(*record, rec); err != nil {
					return err
				}
			}
			time.Sleep(delay)
			switch *action {
			case "pin", "ignore-bye":
				send("D "+encode(*pin), "OK")
			case "cancel":
				send("ERR 83886179 Operation cancelled <Pinentry>")
			case "timeout":
				send("ERR 83886142 Timeout <Pinentry>")
			case "error":
				send("ERR 83918950 Inappropriate ioctl for device <Pinentry>")
			case "hang":
				time.Sleep(time.Hour)
			case "crash":
				os.Exit(1)
			case "garbage":
				send("D " + strings.Repeat("A", 8192))
			case "pin-then-err":
				send("D "+encode(*pin), "ERR 83886179 Operation cancelled <Pinentry>")
			default:
				return fmt.Errorf("unknown action %q", *action)
			}
		default:
			send("ERR 536871187 Unknown IPC command <User defined source 1>")
		}
	}
}

var errTooLong = errors.New("line too long")

// readLine reads one line of at most 1000 bytes (libassuan's limit); a
// longer one is read to its end and reported.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		b = append(b, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		if len(b)-1 > 1000 {
			return "", errTooLong
		}
		return strings.TrimSuffix(string(b[:len(b)-1]), "\r"), nil
	}
}

func decode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad escape")
		}
		c, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), nil
}

func encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '\r', '\n':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func appendRecord(path string, rec Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// takeQueued removes the first non-empty line of the queue file and
// returns its action and optional PIN.
func takeQueued(path string) (action, pin string, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		fields := strings.Fields(l)
		if len(fields) == 0 {
			continue
		}
		rest := strings.Join(lines[i+1:], "\n")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(rest), 0o600); err != nil {
			return "", "", false, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", "", false, err
		}
		action = fields[0]
		if len(fields) > 1 {
			pin = fields[1]
		}
		return action, pin, true, nil
	}
	return "", "", false, nil
}
