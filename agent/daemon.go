package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
)

// Daemon is the long-running agent: it watches readers and cards and keeps
// an opened driver for every inserted card. The loopback API and the tray
// are built on it.
type Daemon struct {
	Log     *zap.Logger
	Drivers drivers.Options
	Now     func() time.Time
	// Open connects to the card in a reader; pcsc.Open by default.
	Open func(ctx context.Context, reader string) (pcsc.Session, error)

	mu    sync.Mutex
	cards map[string]*openCard // by reader name
}

type openCard struct {
	sess pcsc.Session
	card pcsc.Card // nil for unsupported cards
}

// Serve runs until ctx is cancelled. Every goroutine it starts has ended when it returns.
func (d *Daemon) Serve(ctx context.Context) error {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Open == nil {
		d.Open = func(ctx context.Context, reader string) (pcsc.Session, error) {
			return pcsc.Open(ctx, d.Log.Named("pcsc"), reader)
		}
	}
	d.cards = map[string]*openCard{}
	// The monitor's handler must not block on card I/O: events go to one
	// worker, in order, through an unbounded queue.
	q := newQueue[pcsc.Event]()
	mon := pcsc.NewMonitor(d.Log.Named("monitor"), q.push)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, ok := q.pop(ctx)
			if !ok {
				return
			}
			d.handle(ctx, ev)
		}
	}()
	err := mon.Serve(ctx)
	wg.Wait()
	d.mu.Lock()
	for r, oc := range d.cards {
		oc.close()
		delete(d.cards, r)
	}
	d.mu.Unlock()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (oc *openCard) close() {
	if oc.card != nil {
		oc.card.Close() // closes the session too
		return
	}
	oc.sess.Close()
}

func (d *Daemon) handle(ctx context.Context, ev pcsc.Event) {
	log := d.Log.With(zap.String("reader", ev.Reader))
	switch ev.Kind {
	case pcsc.CardInserted:
		d.drop(ev.Reader)
		d.openCard(ctx, log, ev.Reader)
	case pcsc.CardRemoved, pcsc.ReaderRemoved, pcsc.CardMute:
		d.drop(ev.Reader)
	case pcsc.ServiceDown:
		d.mu.Lock()
		for r, oc := range d.cards {
			oc.close()
			delete(d.cards, r)
		}
		d.mu.Unlock()
	}
}

func (d *Daemon) drop(reader string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if oc, ok := d.cards[reader]; ok {
		oc.close()
		delete(d.cards, reader)
	}
}

func (d *Daemon) openCard(ctx context.Context, log *zap.Logger, reader string) {
	sess, err := d.Open(ctx, reader)
	if err != nil {
		log.Warn("cannot connect to card", zap.Error(err))
		return
	}
	card, id, err := drivers.Open(ctx, d.Log, sess, d.Drivers)
	if err != nil {
		log.Warn("card not usable", zap.String("type", id.Name), zap.Error(err))
		d.mu.Lock()
		d.cards[reader] = &openCard{sess: sess}
		d.mu.Unlock()
		return
	}
	info := card.Info()
	fields := []zap.Field{zap.String("type", id.Name), zap.String("driver", info.Driver), zap.String("card_id", info.ID)}
	if certs, err := card.Certificates(ctx); err != nil {
		log.Warn("reading certificates", zap.Error(err))
	} else {
		for _, c := range certs {
			if c.Key == pcsc.KeyAuthentication {
				fields = append(fields,
					zap.String("holder", certinfo.HolderOf(c.Cert).Name),
					zap.Int("days_left", certinfo.DaysLeft(c.Cert.NotAfter, d.Now())))
			}
		}
	}
	if st, err := card.PINStatus(ctx); err == nil {
		fields = append(fields, zap.Int("pin_tries_left", st.Retries), zap.Bool("pin_blocked", st.Blocked))
	}
	log.Info("card ready", fields...)
	d.mu.Lock()
	d.cards[reader] = &openCard{sess: sess, card: card}
	d.mu.Unlock()
}

// queue is an unbounded FIFO: the producer never blocks, so the PC/SC
// monitor is never held up by a slow card operation.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{signal: make(chan struct{}, 1)} }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop waits for the next item; it returns false once ctx is done.
func (q *queue[T]) pop(ctx context.Context) (T, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v := q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.mu.Unlock()
			return v, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			var zero T
			return zero, false
		case <-q.signal:
		}
	}
}
