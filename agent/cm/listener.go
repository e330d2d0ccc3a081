package cm

import (
	"net"
	"net/netip"
	"sync"

	"go.uber.org/zap"
)

// peerListener checks every accepted connection's OS user before the HTTP
// server reads a byte of it: a connection from another user (or one whose
// owner cannot be found) is closed at once, without a reply, so it neither
// holds a descriptor nor wins a page's race for the Port Service ports.
// The check runs off the accept loop; at most max connections are checked
// or open at once (others are closed at once).
type peerListener struct {
	net.Listener
	check func(us, peer netip.AddrPort) error
	log   *zap.Logger
	slots chan struct{}

	ready     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	acceptErr error // why the accept loop ended
}

func newPeerListener(l net.Listener, check func(us, peer netip.AddrPort) error, max int, log *zap.Logger) *peerListener {
	pl := &peerListener{Listener: l, check: check, log: log, slots: make(chan struct{}, max),
		ready: make(chan net.Conn), done: make(chan struct{})}
	go pl.loop()
	return pl
}

func (pl *peerListener) loop() {
	for {
		c, err := pl.Listener.Accept()
		if err != nil {
			pl.mu.Lock()
			pl.acceptErr = err
			pl.mu.Unlock()
			pl.Close()
			return
		}
		select {
		case pl.slots <- struct{}{}:
		default:
			pl.log.Warn("too many connections: closing a new one")
			c.Close()
			continue
		}
		go pl.vet(c)
	}
}

func (pl *peerListener) vet(c net.Conn) {
	us, peer := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	if err := pl.check(us, peer); err != nil {
		pl.log.Warn("connection from another user or an unknown process: closed", zap.Error(err))
		c.Close()
		<-pl.slots
		return
	}
	tc := &trackedConn{Conn: c, release: func() { <-pl.slots }}
	select {
	case pl.ready <- tc:
	case <-pl.done:
		tc.Close()
	}
}

func (pl *peerListener) Accept() (net.Conn, error) {
	select {
	case c := <-pl.ready:
		return c, nil
	case <-pl.done:
		pl.mu.Lock()
		defer pl.mu.Unlock()
		if pl.acceptErr != nil {
			return nil, pl.acceptErr
		}
		return nil, net.ErrClosed
	}
}

func (pl *peerListener) Close() error {
	var err error
	pl.closeOnce.Do(func() {
		close(pl.done)
		err = pl.Listener.Close()
	})
	return err
}

// trackedConn gives its slot back once, when closed.
type trackedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}
