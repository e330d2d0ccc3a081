package peer

import (
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of ListenerOptions.
const (
	DefaultMaxConns   = 128
	DefaultMaxPending = 16
	// RefusalLogInterval: refusals of other users' connections are logged
	// at most once per interval, with the number refused meanwhile.
	RefusalLogInterval = 10 * time.Second
)

// ListenerOptions configure NewListener. Zero values take the defaults.
type ListenerOptions struct {
	// Check checks each accepted connection; nil means CheckAddrs (tests
	// replace it).
	Check Checker
	// MaxConns caps the connections that passed the check and are still
	// open (default DefaultMaxConns). Since only the listener's own user
	// passes, it is the cap per peer user; another user's cap is zero.
	MaxConns int
	// MaxPending caps the checks in flight (default DefaultMaxPending). When
	// they are all busy the listener accepts nothing more: new connections
	// wait in the kernel's backlog and cost the process no descriptor.
	MaxPending int
	// Overflow, when set, is given a connection that passed the check while
	// MaxConns connections are open, before it is closed (an HTTP server
	// writes its 503 there). It must not block for long.
	Overflow func(net.Conn)
	// Log receives the refusals (aggregated: one line per RefusalLogInterval).
	Log *zap.Logger
}

// Listener wraps a loopback TCP listener: Accept returns only connections
// whose peer passed the check, as *Conn. The check runs on a goroutine per
// accepted connection (at most MaxPending at once), never on the accept
// loop; a refused connection is closed at once, before anything is read
// from it.
type Listener struct {
	inner net.Listener
	opts  ListenerOptions
	log   *zap.Logger

	ready   chan *Conn    // checked connections waiting for Accept
	pending chan struct{} // one token per check in flight
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the accept loop has ended
	err     error         // why it ended (set before done is closed)

	mu      sync.Mutex
	open    int
	refused refusalLog
	wg      sync.WaitGroup
	closing sync.Once
}

// NewListener wraps l and starts accepting.
func NewListener(l net.Listener, opts ListenerOptions) *Listener {
	if opts.Check == nil {
		opts.Check = CheckAddrs
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	pl := &Listener{
		inner:   l,
		opts:    opts,
		log:     opts.Log,
		ready:   make(chan *Conn),
		pending: make(chan struct{}, opts.MaxPending),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go pl.acceptLoop()
	return pl
}

// Accept returns the next connection that passed the check.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close closes the listener and every connection not yet returned by Accept.
func (l *Listener) Close() error {
	var err error
	l.closing.Do(func() {
		close(l.quit)
		err = l.inner.Close()
		<-l.done
		l.wg.Wait()
	})
	return err
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Open returns how many checked connections are open.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		select {
		case l.pending <- struct{}{}: // a free check slot
		case <-l.quit:
			l.err = net.ErrClosed
			close(l.done)
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			<-l.pending
			if errors.Is(err, net.ErrClosed) {
				l.err = err
				close(l.done)
				return
			}
			// Out of descriptors or similar: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.wg.Add(1)
		go l.admit(c)
	}
}

// admit checks c and hands it to Accept, or closes it.
func (l *Listener) admit(c net.Conn) {
	defer l.wg.Done()
	err := checkWith(l.opts.Check, c)
	<-l.pending
	if err != nil {
		closeNow(c)
		l.refuse(err)
		return
	}
	l.mu.Lock()
	full := l.open >= l.opts.MaxConns
	if !full {
		l.open++
	}
	l.mu.Unlock()
	if full {
		if l.opts.Overflow != nil {
			l.opts.Overflow(c)
		}
		c.Close()
		l.log.Warn("connection refused: too many open connections", zap.Int("max", l.opts.MaxConns))
		return
	}
	pc := &Conn{Conn: c, l: l}
	select {
	case l.ready <- pc:
	case <-l.done:
		pc.Close()
	}
}

// closeNow closes c with a reset where it can: the other user's end gets
// no orderly shutdown to wait for and the agent keeps no TIME_WAIT socket.
func closeNow(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (l *Listener) refuse(err error) {
	l.mu.Lock()
	n, log := l.refused.add(time.Now())
	l.mu.Unlock()
	if log {
		l.log.Warn("connection from another user or an unknown process refused",
			zap.Error(err), zap.Int("refused_since_last_line", n))
	}
}

// refusalLog aggregates refusals: add says whether to log now and how many
// were refused since the last line (this one included).
type refusalLog struct {
	last  time.Time
	count int
}

func (r *refusalLog) add(now time.Time) (int, bool) {
	r.count++
	if !r.last.IsZero() && now.Sub(r.last) < RefusalLogInterval {
		return 0, false
	}
	n := r.count
	r.last, r.count = now, 0
	return n, true
}

// Conn is a connection that passed the check.
type Conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Close closes the connection and frees its place under MaxConns.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}
