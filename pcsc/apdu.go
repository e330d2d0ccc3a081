package pcsc

import "fmt"

// Transmitter sends one raw command APDU and returns the raw response APDU (data followed by SW1 SW2).
// A connected card inside a transaction implements it; so does a virtual card in-process.
type Transmitter interface {
	Transmit(cmd []byte) ([]byte, error)
}

// Command is an ISO 7816-4 command APDU.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	// Le is the expected response length: -1 for none (case 1/3), 0 for "up to 256" (encoded as 00), 1..256 otherwise.
	Le int
}

// Response is a response APDU split into data and status word.
type Response struct {
	Data []byte
	SW   uint16
}

// OK reports SW 9000.
func (r Response) OK() bool { return r.SW == 0x9000 }

// Err returns nil for 9000 and a *StatusError otherwise.
func (r Response) Err() error {
	if r.SW == 0x9000 {
		return nil
	}
	return &StatusError{SW: r.SW}
}

// String is for debugging and traces; it prints the header only, never data (which may hold a PIN).
func (c Command) String() string {
	return fmt.Sprintf("%02X %02X %02X %02X Lc=%d Le=%d", c.CLA, c.INS, c.P1, c.P2, len(c.Data), c.Le)
}

// encode builds a short APDU. len(c.Data) must be at most 255.
func (c Command) encode() []byte {
	b := make([]byte, 0, 5+len(c.Data)+1)
	b = append(b, c.CLA, c.INS, c.P1, c.P2)
	if len(c.Data) > 0 {
		b = append(b, byte(len(c.Data)))
		b = append(b, c.Data...)
	}
	if c.Le >= 0 {
		b = append(b, byte(c.Le)) // 256 encodes as 00
	}
	return b
}

// ParseResponse splits a raw response APDU.
func ParseResponse(raw []byte) (Response, error) {
	if len(raw) < 2 {
		return Response{}, fmt.Errorf("%w: response of %d bytes", ErrCardUnresponsive, len(raw))
	}
	n := len(raw) - 2
	return Response{Data: raw[:n:n], SW: uint16(raw[n])<<8 | uint16(raw[n+1])}, nil
}

// maxResponse bounds the data collected through GET RESPONSE, so a card that
// answers 61xx forever cannot make the agent allocate without limit.
const maxResponse = 64 << 10

// maxGetResponse bounds the GET RESPONSE commands for one response (256
// bytes each carry maxResponse), so that a card answering 61xx with little
// or no data ends too, instead of being asked again for ever.
const maxGetResponse = maxResponse / 256

// Exchange sends cmd over t using short APDUs: data longer than 255 bytes is
// sent with command chaining (CLA bit 0x10), a 61xx answer is followed by
// GET RESPONSE until the whole response is read, and a 6Cxx answer is
// repeated once with the length the card asked for. The returned Response's
// SW is the final status word; a non-9000 SW is not an error here.
//
// Exchange never resends a command after a transport error: the caller
// gets the error, so a VERIFY is never sent twice.
func Exchange(t Transmitter, cmd Command) (Response, error) {
	data := cmd.Data
	for len(data) > 255 {
		part := cmd
		part.CLA |= 0x10
		part.Data = data[:255]
		part.Le = -1
		resp, err := transmit(t, part)
		if err != nil {
			return Response{}, err
		}
		if resp.SW != 0x9000 {
			return resp, nil
		}
		data = data[255:]
	}
	last := cmd
	last.Data = data
	resp, err := transmit(t, last)
	if err != nil {
		return Response{}, err
	}
	if resp.SW>>8 == 0x6C && cmd.Le >= 0 {
		last.Le = int(resp.SW & 0xFF)
		if resp, err = transmit(t, last); err != nil {
			return Response{}, err
		}
	}
	out := resp.Data
	for n := 0; resp.SW>>8 == 0x61; n++ {
		if len(out) > maxResponse || n >= maxGetResponse {
			return Response{}, fmt.Errorf("%w: response longer than %d bytes or %d GET RESPONSE commands", ErrCardUnresponsive, maxResponse, maxGetResponse)
		}
		le := int(resp.SW & 0xFF)
		resp, err = transmit(t, Command{CLA: cmd.CLA &^ 0x10, INS: 0xC0, Le: le})
		if err != nil {
			return Response{}, err
		}
		out = append(out[:len(out):len(out)], resp.Data...)
	}
	return Response{Data: out, SW: resp.SW}, nil
}

func transmit(t Transmitter, c Command) (Response, error) {
	raw, err := t.Transmit(c.encode())
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(raw)
}

// HexString formats b as upper-case hex with spaces ("3B D6 97"), the way ATRs and APDUs are usually written.
func HexString(b []byte) string { return fmt.Sprintf("% X", b) }
