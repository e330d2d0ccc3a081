package vcard

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"time"
)

// Fault injection beyond Options.BeforeAPDU: an Injector is switched while a
// card is in a reader, so one test can make the card slow, garbled, mute or
// pulled at exactly the APDU it wants, and switch it back:
//
//	inj := &vcard.Injector{}
//	slot := p.Insert(t, 0, inj.Card(card), inj.Options(vcard.Options{}))
//	inj.Arm(vcard.WithData(vcard.INS(0x20)), vcard.Action{Fault: vcard.Drop}, 1) // pull the card during VERIFY
//	...
//	inj.Disarm()
//
// Keep the original card value for its introspection (PIN tries, logs):
// Card returns a wrapper.

// Matcher selects command APDUs.
type Matcher func(cmd []byte) bool

// AnyAPDU matches every command APDU.
func AnyAPDU([]byte) bool { return true }

// INS matches the APDUs with instruction byte ins.
func INS(ins byte) Matcher {
	return func(cmd []byte) bool { return len(cmd) >= 4 && cmd[1] == ins }
}

// WithData matches what m matches and carries command data (an ISO 7816-4
// case 3 or 4 APDU): a VERIFY with a PIN, not the empty VERIFY that reads
// the tries left.
func WithData(m Matcher) Matcher {
	return func(cmd []byte) bool { return len(cmd) > 5 && m(cmd) }
}

// WithoutData matches what m matches and carries no command data.
func WithoutData(m Matcher) Matcher {
	return func(cmd []byte) bool { return len(cmd) <= 5 && m(cmd) }
}

// Unchained matches what m matches when it is the last (or only) part of a
// command: CLA bit 0x10 (command chaining, more parts follow) is clear. A
// long GENERAL AUTHENTICATE arrives in several chained parts; only the last
// one makes the card act.
func Unchained(m Matcher) Matcher {
	return func(cmd []byte) bool { return len(cmd) >= 4 && cmd[0]&0x10 == 0 && m(cmd) }
}

// Action is what happens to an APDU an armed rule matches. The zero Action
// passes it unchanged.
type Action struct {
	// Fault is Pass, Drop (close before the card sees it), Mute (never
	// answer again) or DropAfter (the card acts on it, then the connection
	// closes without an answer).
	Fault Fault
	// Reached, when set, receives the command (without blocking) as soon as
	// the APDU matches, before Hold and Delay.
	Reached chan<- []byte
	// Hold keeps the APDU in flight until the channel is closed: the host
	// waits for an answer meanwhile (pcscd killed during an APDU).
	Hold <-chan struct{}
	// Delay is waited before the card sees the APDU (a slow answer).
	Delay time.Duration
	// Reply, when not nil, is answered instead and the card never sees the
	// APDU (a garbage answer). An empty, non-nil Reply answers zero bytes.
	Reply []byte
	// Corrupt, when set, lets the card act on the APDU and replaces its
	// answer with Corrupt(answer).
	Corrupt func(resp []byte) []byte
}

// Injector applies armed Actions to the APDUs of the card it wraps. It is
// safe to arm and disarm from a test while the card is in use.
type Injector struct {
	mu      sync.Mutex
	rules   []*rule
	hits    int
	pending *Action // decided in BeforeAPDU for the Transmit that follows it
}

type rule struct {
	match Matcher
	act   Action
	left  int // applications left; < 0: until disarmed
}

// Arm makes the next times APDUs that match get act; times <= 0 applies it
// to every match until Disarm. The rule armed last is tried first.
func (in *Injector) Arm(match Matcher, act Action, times int) {
	if match == nil {
		match = AnyAPDU
	}
	left := times
	if times <= 0 {
		left = -1
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append([]*rule{{match: match, act: act, left: left}}, in.rules...)
}

// Disarm removes every rule; APDUs pass unchanged again. An APDU held or
// delayed at that moment finishes as it was armed.
func (in *Injector) Disarm() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = nil
	in.pending = nil
}

// Hits returns how many APDUs an armed rule has matched so far.
func (in *Injector) Hits() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits
}

// Options returns opts with a BeforeAPDU that applies the armed rules. An
// existing opts.BeforeAPDU runs first; when it returns anything but Pass,
// that wins and no rule is applied.
func (in *Injector) Options(opts Options) Options {
	prev := opts.BeforeAPDU
	opts.BeforeAPDU = func(cmd []byte) Fault {
		if prev != nil {
			if f := prev(cmd); f != Pass {
				return f
			}
		}
		return in.before(cmd)
	}
	return opts
}

func (in *Injector) before(cmd []byte) Fault {
	in.mu.Lock()
	in.pending = nil
	var act *Action
	for i, r := range in.rules {
		if r.left == 0 || !r.match(cmd) {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		a := r.act
		act = &a
		in.hits++
		if r.left == 0 {
			in.rules = append(in.rules[:i:i], in.rules[i+1:]...)
		}
		break
	}
	if act != nil && (act.Reply != nil || act.Corrupt != nil) {
		in.pending = act
	}
	in.mu.Unlock()
	if act == nil {
		return Pass
	}
	if act.Reached != nil {
		select {
		case act.Reached <- bytes.Clone(cmd):
		default:
		}
	}
	if act.Hold != nil {
		<-act.Hold
	}
	if act.Delay > 0 {
		time.Sleep(act.Delay)
	}
	return act.Fault
}

// Card wraps c so that Reply and Corrupt actions apply to it. Pass the
// wrapper to Insert together with Options.
func (in *Injector) Card(c Card) Card { return &injectedCard{Card: c, in: in} }

type injectedCard struct {
	Card
	in *Injector
}

func (c *injectedCard) Transmit(cmd []byte) ([]byte, error) {
	c.in.mu.Lock()
	act := c.in.pending
	c.in.pending = nil
	c.in.mu.Unlock()
	if act != nil && act.Reply != nil {
		return bytes.Clone(act.Reply), nil
	}
	resp, err := c.Card.Transmit(cmd)
	if act != nil && act.Corrupt != nil && err == nil {
		resp = act.Corrupt(resp)
	}
	return resp, err
}

// Garbage returns n deterministic pseudo-random bytes (the same for the
// same seed) followed by the status word sw: a card that answers nonsense
// with a plausible status. n may be 0.
func Garbage(seed uint64, n int, sw uint16) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n, n+2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return append(b, byte(sw>>8), byte(sw))
}
