// Package trayproto is the contract between the agent and its tray process.
//
// It holds what both ends must agree on: the programs' names and how one
// finds the other (FindProgram), the private channel the agent hands the
// tray (EnvChannel, AttachChannel in the agent, OpenChannel in the tray),
// and the messages on it (Message, read and written by Conn). It imports no
// card code and no GUI library, so that each program links only its own
// side.
package trayproto

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cardagent/cardagent/agent/wire"
)

// The channel between the agent and its tray carries one JSON object per
// line (Message). The agent sends "status" messages, each with the whole
// status: on connection, after every card or reader event, and when the
// status changed without an event (a PIN try spent by a sign-in, a day
// gone by), which the agent checks every 5 seconds (trayhost.DefaultRefresh).
// The tray sends "request" messages; the agent answers each with a "result"
// message. No message has a field for a PIN or a PUK.
const (
	TypeStatus  = "status"
	TypeResult  = "result"
	TypeRequest = "request"
)

// Actions a tray may request.
const (
	ActionChangePIN  = "change_pin"  // the agent asks for the PINs and changes the PIN
	ActionUnblockPIN = "unblock_pin" // the agent asks for the PUK and a new PIN
	ActionRefresh    = "refresh"     // send the status now
	ActionQuit       = "quit"        // the user chose Quit: stop the agent (and the tray)
)

// MaxLine bounds one message on the channel.
const MaxLine = 256 << 10

// Message is one line of the channel.
type Message struct {
	Type string `json:"type"`
	// ID pairs a request with its result.
	ID int64 `json:"id,omitempty"`

	// Status messages.
	Status *wire.Status `json:"status,omitempty"`
	Agent  *AgentInfo   `json:"agent,omitempty"`
	// Event names the card event that caused this status ("" for none).
	Event wire.EventKind `json:"event,omitempty"`

	// Request messages.
	Action string `json:"action,omitempty"`

	// Result messages: OK, or Error.
	OK    bool         `json:"ok,omitempty"`
	Error *ResultError `json:"error,omitempty"`
}

// ResultError is a failed request, in words for the user.
type ResultError struct {
	Code      wire.Code `json:"code"`
	Message   string    `json:"message"`
	TriesLeft int       `json:"tries_left"`
}

// AgentInfo are the agent's own facts the tray shows.
type AgentInfo struct {
	Version string `json:"version"`
	// APIPort is the loopback API's port (0 when it is not serving);
	// APIError says, in words, why sign-in pages cannot reach the agent
	// ("every port from 43800 to 43809 is in use"), "" when they can.
	APIPort  int    `json:"api_port"`
	APIError string `json:"api_error,omitempty"`
	// Environment is the active environment; RenewalURL its renewal page.
	Environment string `json:"environment,omitempty"`
	RenewalURL  string `json:"renewal_url,omitempty"`
	// PromptBackend says how PINs are asked ("desktop dialog", "pinentry").
	PromptBackend string `json:"prompt_backend,omitempty"`
	// HideQuit hides the Quit item (IT policy).
	HideQuit bool `json:"hide_quit,omitempty"`
	// Activity is the signing in progress, in words ("Signing 3
	// prescriptions for https://rx.example"), "" when none.
	Activity string `json:"activity,omitempty"`
	// WarnDays and UrgentDays are the expiry thresholds (0: defaults).
	WarnDays   int `json:"warn_days,omitempty"`
	UrgentDays int `json:"urgent_days,omitempty"`
}

// Conn reads and writes Messages on a channel, one JSON object per line of
// at most MaxLine bytes. Writes are serialised; reads are not (one reader).
type Conn struct {
	r  *bufio.Reader
	wm sync.Mutex
	w  io.Writer
}

// NewConn returns a Conn reading r and writing w.
func NewConn(r io.Reader, w io.Writer) *Conn {
	return &Conn{r: bufio.NewReaderSize(r, 4096), w: w}
}

// ErrLineTooLong is a message longer than MaxLine.
var ErrLineTooLong = errors.New("tray channel: message too long")

// Read returns the next message; io.EOF when the other side closed,
// io.ErrUnexpectedEOF when it closed in the middle of a line.
func (c *Conn) Read() (Message, error) {
	var line []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLine {
			return Message{}, ErrLineTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return Message{}, io.ErrUnexpectedEOF
			}
			return Message{}, err
		}
		break
	}
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return Message{}, fmt.Errorf("tray channel: %w", err)
	}
	return m, nil
}

// Write sends m.
func (c *Conn) Write(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.WriteRaw(b)
}

// WriteRaw sends one message already encoded as JSON (no newline).
func (c *Conn) WriteRaw(b []byte) error {
	line := make([]byte, 0, len(b)+1)
	line = append(append(line, b...), '\n')
	c.wm.Lock()
	defer c.wm.Unlock()
	_, err := c.w.Write(line)
	return err
}
