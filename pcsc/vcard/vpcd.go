// Package vcard holds virtual smart cards that a real pcscd sees.
//
// It connects them to vsmartcard's vpcd reader driver, so that a real pcscd
// (and everything above it: libpcsclite, ebfe/scard, OpenSC) sees an
// inserted card. The same cards answer APDUs in-process (they implement
// pcsc.Transmitter) for fast unit tests.
//
// vpcd framing: each message is a 2-byte big-endian length and a payload. A
// 1-byte payload from vpcd is a control code (0 power off, 1 power on,
// 2 reset, 4 get ATR); any longer payload is a command APDU. The card answers
// "get ATR" and APDUs with a message of the same framing.
package vcard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Card is an emulated smart card.
type Card interface {
	// ATR is the card's answer to reset.
	ATR() []byte
	// Reset returns the card to its power-on state: no application selected,
	// no PIN verified. Persistent data (keys, PIN, retry counters) stays.
	Reset()
	// Transmit processes one command APDU and returns the response APDU.
	Transmit(cmd []byte) ([]byte, error)
}

// Fault tells the connection what to do with one command APDU (fault injection).
type Fault int

const (
	Pass Fault = iota // deliver the APDU to the card
	Drop              // close the connection before the card answers: the card is pulled mid-APDU
	Mute              // never answer: the card is mute until removed
	// DropAfter delivers the APDU to the card, then closes the connection
	// without answering: the card acted on it (a VERIFY counted, a signature
	// made) but the host never hears back.
	DropAfter
)

// Options tune an inserted card.
type Options struct {
	// BeforeAPDU, when set, is called with each command APDU before the card sees it.
	BeforeAPDU func(cmd []byte) Fault
	// Delay is added before every answer (a slow card).
	Delay time.Duration
}

const (
	ctrlPowerOff = 0
	ctrlPowerOn  = 1
	ctrlReset    = 2
	ctrlGetATR   = 4
)

// Slot is a card inserted into a vpcd slot. Remove takes it out.
type Slot struct {
	conn net.Conn
	card Card
	opts Options
	done chan struct{}
	err  error

	closeOnce sync.Once
	mu        sync.Mutex // guards card against concurrent Transmit from tests
}

// Insert connects card to the vpcd slot listening on addr (for example
// "127.0.0.1:35963"): pcscd sees it inserted within its polling interval.
func Insert(addr string, card Card, opts Options) (*Slot, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to vpcd at %s: %w", addr, err)
	}
	s := &Slot{conn: conn, card: card, opts: opts, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

// Remove closes the connection (pcscd sees the card removed) and waits until
// the slot's goroutine has ended.
func (s *Slot) Remove() error {
	s.closeOnce.Do(func() { s.conn.Close() })
	<-s.done
	if errors.Is(s.err, net.ErrClosed) || errors.Is(s.err, io.EOF) {
		return nil
	}
	return s.err
}

// Done is closed when the connection has ended (removed, or vpcd went away).
func (s *Slot) Done() <-chan struct{} { return s.done }

// Card returns the inserted card.
func (s *Slot) Card() Card { return s.card }

func (s *Slot) serve() {
	defer close(s.done)
	defer s.closeOnce.Do(func() { s.conn.Close() })
	var hdr [2]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
			s.err = err
			return
		}
		quickAck(s.conn)
		n := int(binary.BigEndian.Uint16(hdr[:]))
		buf = buf[:n]
		if _, err := io.ReadFull(s.conn, buf); err != nil {
			s.err = err
			return
		}
		quickAck(s.conn)
		var reply []byte
		if n == 1 {
			switch buf[0] {
			case ctrlPowerOn, ctrlReset, ctrlPowerOff:
				s.mu.Lock()
				s.card.Reset()
				s.mu.Unlock()
				continue
			case ctrlGetATR:
				reply = s.card.ATR()
			default:
				continue
			}
		} else {
			cmd := append([]byte(nil), buf...)
			dropAfter := false
			if s.opts.BeforeAPDU != nil {
				switch s.opts.BeforeAPDU(cmd) {
				case Drop:
					return
				case Mute:
					// Swallow everything until the connection is closed.
					_, s.err = io.Copy(io.Discard, s.conn)
					return
				case DropAfter:
					dropAfter = true
				}
			}
			s.mu.Lock()
			resp, err := s.card.Transmit(cmd)
			s.mu.Unlock()
			if dropAfter {
				return
			}
			if err != nil {
				resp = []byte{0x6F, 0x00}
			}
			reply = resp
		}
		if s.opts.Delay > 0 {
			time.Sleep(s.opts.Delay)
		}
		out := make([]byte, 2+len(reply))
		binary.BigEndian.PutUint16(out, uint16(len(reply)))
		copy(out[2:], reply)
		if _, err := s.conn.Write(out); err != nil {
			s.err = err
			return
		}
	}
}
