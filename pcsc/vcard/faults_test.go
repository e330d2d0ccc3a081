package vcard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoCard answers every APDU with its INS byte and 9000, and counts them.
type echoCard struct {
	mu   sync.Mutex
	seen [][]byte
}

func (c *echoCard) ATR() []byte { return []byte{0x3B, 0x00} }
func (c *echoCard) Reset()      {}
func (c *echoCard) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, bytes.Clone(cmd))
	return []byte{cmd[1], 0x90, 0x00}, nil
}

func (c *echoCard) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// fakeVPCD is vpcd's side of the socket: it sends APDUs as vpcd does and
// reads the card's answers.
type fakeVPCD struct {
	t    *testing.T
	conn net.Conn
}

func startFakeVPCD(t *testing.T, card Card, opts Options) (*fakeVPCD, *Slot) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	slot, err := Insert(l.Addr().String(), card, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn := <-accepted
	if conn == nil {
		t.Fatal("no connection")
	}
	t.Cleanup(func() {
		conn.Close()
		slot.Remove()
	})
	return &fakeVPCD{t: t, conn: conn}, slot
}

// exchange sends one APDU and waits up to timeout for the answer: closed
// when the card closed the connection, err when no answer came in time.
func (v *fakeVPCD) exchange(apdu []byte, timeout time.Duration) (resp []byte, closed bool, err error) {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(apdu)))
	if _, err := v.conn.Write(append(out, apdu...)); err != nil {
		return nil, true, nil
	}
	v.conn.SetReadDeadline(time.Now().Add(timeout))
	var hdr [2]byte
	if _, err := io.ReadFull(v.conn, hdr[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, false, err
		}
		return nil, true, nil
	}
	resp = make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(v.conn, resp); err != nil {
		return nil, true, nil
	}
	return resp, false, nil
}

var (
	selectAPDU = []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00}
	verifyPIN  = []byte{0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32}
	verifyNone = []byte{0x00, 0x20, 0x00, 0x80}
	chained    = []byte{0x10, 0x87, 0x07, 0x9A, 0x01, 0x00}
	lastPart   = []byte{0x00, 0x87, 0x07, 0x9A, 0x01, 0x00}
)

func TestMatchers(t *testing.T) {
	tests := []struct {
		name string
		m    Matcher
		yes  [][]byte
		no   [][]byte
	}{
		{"INS", INS(0x20), [][]byte{verifyPIN, verifyNone}, [][]byte{selectAPDU, {0x00}}},
		{"WithData", WithData(INS(0x20)), [][]byte{verifyPIN}, [][]byte{verifyNone, selectAPDU}},
		{"WithoutData", WithoutData(INS(0x20)), [][]byte{verifyNone}, [][]byte{verifyPIN}},
		{"Unchained", Unchained(INS(0x87)), [][]byte{lastPart}, [][]byte{chained, verifyPIN}},
		{"AnyAPDU", AnyAPDU, [][]byte{selectAPDU, chained}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range tt.yes {
				if !tt.m(c) {
					t.Errorf("% X not matched", c)
				}
			}
			for _, c := range tt.no {
				if tt.m(c) {
					t.Errorf("% X matched", c)
				}
			}
		})
	}
}

// TestInjector drives each Action through the real vpcd framing (a fake
// vpcd end) and checks what the host gets and what the card saw.
func TestInjector(t *testing.T) {
	t.Run("pass, then reply, then pass again", func(t *testing.T) {
		card := &echoCard{}
		inj := &Injector{}
		v, _ := startFakeVPCD(t, inj.Card(card), inj.Options(Options{}))
		inj.Arm(WithData(INS(0x20)), Action{Reply: []byte{0x6F, 0x00}}, 1)
		for i, want := range [][]byte{{0xA4, 0x90, 0x00}, {0x6F, 0x00}, {0x20, 0x90, 0x00}, {0x20, 0x90, 0x00}} {
			cmd := selectAPDU
			if i > 0 {
				cmd = verifyPIN
			}
			resp, closed, err := v.exchange(cmd, time.Second)
			if err != nil || closed || !bytes.Equal(resp, want) {
				t.Fatalf("APDU %d: % X, closed %v, %v; want % X", i, resp, closed, err, want)
			}
		}
		if card.count() != 3 || inj.Hits() != 1 {
			t.Errorf("card saw %d APDUs, %d hits; want 3 (the garbage answer replaced one), 1", card.count(), inj.Hits())
		}
	})
	t.Run("corrupt the card's answer", func(t *testing.T) {
		card := &echoCard{}
		inj := &Injector{}
		v, _ := startFakeVPCD(t, inj.Card(card), inj.Options(Options{}))
		inj.Arm(AnyAPDU, Action{Corrupt: func(r []byte) []byte { return append([]byte{0xEE}, r...) }}, 0)
		for range 2 {
			resp, _, err := v.exchange(selectAPDU, time.Second)
			if err != nil || !bytes.Equal(resp, []byte{0xEE, 0xA4, 0x90, 0x00}) {
				t.Fatalf("% X, %v", resp, err)
			}
		}
		inj.Disarm()
		if resp, _, _ := v.exchange(selectAPDU, time.Second); !bytes.Equal(resp, []byte{0xA4, 0x90, 0x00}) {
			t.Errorf("after Disarm: % X", resp)
		}
		if card.count() != 3 {
			t.Errorf("card saw %d APDUs, want 3", card.count())
		}
	})
	faults := []struct {
		name       string
		act        Action
		cardSaw    int
		wantClosed bool
	}{
		{"drop: pulled before the card sees it", Action{Fault: Drop}, 0, true},
		{"drop after: the card acted, no answer", Action{Fault: DropAfter}, 1, true},
		{"mute: no answer, connection open", Action{Fault: Mute}, 0, false},
	}
	for _, tt := range faults {
		t.Run(tt.name, func(t *testing.T) {
			card := &echoCard{}
			inj := &Injector{}
			v, slot := startFakeVPCD(t, inj.Card(card), inj.Options(Options{}))
			inj.Arm(Unchained(INS(0x87)), tt.act, 1)
			if resp, _, err := v.exchange(chained, time.Second); err != nil || resp[0] != 0x87 {
				t.Fatalf("chained part: % X, %v", resp, err)
			}
			resp, closed, err := v.exchange(lastPart, 300*time.Millisecond)
			if closed != tt.wantClosed || resp != nil {
				t.Fatalf("last part: % X, closed %v, %v; want no answer, closed %v", resp, closed, err, tt.wantClosed)
			}
			if !tt.wantClosed && err == nil {
				t.Fatal("a mute card answered")
			}
			if got := card.count() - 1; got != tt.cardSaw {
				t.Errorf("card saw the faulty APDU %d times, want %d", got, tt.cardSaw)
			}
			select {
			case <-slot.Done():
				if !tt.wantClosed {
					t.Error("mute card's connection ended")
				}
			case <-time.After(100 * time.Millisecond):
				if tt.wantClosed {
					t.Error("slot still open")
				}
			}
		})
	}
	t.Run("hold and delay", func(t *testing.T) {
		card := &echoCard{}
		inj := &Injector{}
		v, _ := startFakeVPCD(t, inj.Card(card), inj.Options(Options{}))
		reached, hold := make(chan []byte, 1), make(chan struct{})
		inj.Arm(INS(0x20), Action{Reached: reached, Hold: hold, Delay: 100 * time.Millisecond}, 1)
		type result struct {
			resp []byte
			at   time.Time
		}
		got := make(chan result, 1)
		go func() {
			r, _, _ := v.exchange(verifyPIN, 5*time.Second)
			got <- result{r, time.Now()}
		}()
		if cmd := <-reached; !bytes.Equal(cmd, verifyPIN) {
			t.Fatalf("reached with % X", cmd)
		}
		select {
		case r := <-got:
			t.Fatalf("answered while held: % X", r.resp)
		case <-time.After(200 * time.Millisecond):
		}
		released := time.Now()
		close(hold)
		r := <-got
		if !bytes.Equal(r.resp, []byte{0x20, 0x90, 0x00}) || r.at.Sub(released) < 100*time.Millisecond {
			t.Errorf("answer % X %v after release, want 20 90 00 after the 100 ms delay", r.resp, r.at.Sub(released))
		}
	})
	t.Run("an existing BeforeAPDU wins", func(t *testing.T) {
		card := &echoCard{}
		inj := &Injector{}
		v, _ := startFakeVPCD(t, inj.Card(card), inj.Options(Options{BeforeAPDU: func(cmd []byte) Fault {
			if cmd[1] == 0xA4 {
				return Drop
			}
			return Pass
		}}))
		inj.Arm(AnyAPDU, Action{Reply: []byte{0x6F, 0x00}}, 0)
		if resp, _, _ := v.exchange(verifyPIN, time.Second); !bytes.Equal(resp, []byte{0x6F, 0x00}) {
			t.Fatalf("armed rule: % X", resp)
		}
		if _, closed, _ := v.exchange(selectAPDU, time.Second); !closed {
			t.Error("the existing BeforeAPDU's Drop did not apply")
		}
	})
}

func TestGarbage(t *testing.T) {
	a, b := Garbage(7, 16, 0x9000), Garbage(7, 16, 0x9000)
	if !bytes.Equal(a, b) || len(a) != 18 || a[16] != 0x90 || a[17] != 0x00 {
		t.Fatalf("% X / % X", a, b)
	}
	if bytes.Equal(a, Garbage(8, 16, 0x9000)) {
		t.Error("different seeds give the same bytes")
	}
	if g := Garbage(1, 0, 0x6100); !bytes.Equal(g, []byte{0x61, 0x00}) {
		t.Errorf("% X", g)
	}
}
