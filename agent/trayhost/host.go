// Package trayhost is the agent's side of the tray icon: it runs the tray
// program and serves its channel.
//
// TraySupervisor starts cardagent-tray (cmd/cardagent-tray) when a desktop
// session is present, hands it a private channel (trayproto) and restarts
// it when it dies; Host serves that channel from the card service. The tray
// process itself is package tray; this package links no GUI library.
package trayhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray/trayproto"
)

// Backend is what Host needs from the agent's card service
// (agent.CardService implements it).
type Backend interface {
	Status() wire.Status
	Subscribe(fn func(wire.Event)) (unsubscribe func())
	ChangePIN(ctx context.Context, p prompt.Prompter) error
	UnblockPIN(ctx context.Context, p prompt.Prompter) error
}

// DefaultRefresh is how often the host compares the status with the one it
// last sent, and sends it when it changed without an event (the PIN tries
// left after a failed sign-in, "expires in N days" after midnight).
// Status() is a copy from the card service's cache: no card I/O.
const DefaultRefresh = 5 * time.Second

// Host is the agent's end of one tray channel.
type Host struct {
	Log     *zap.Logger
	Backend Backend
	// Prompter asks for PINs for the tray's requests (the agent's own
	// prompter: the PINs never go to the tray process).
	Prompter prompt.Prompter
	// Info returns the agent's facts for the tray; nil sends none.
	Info func() trayproto.AgentInfo
	// Refresh is the status comparison interval; zero means DefaultRefresh.
	Refresh time.Duration
}

// Serve speaks the channel (reading r, writing w) until ctx ends or the
// tray closes its end, and closes r and w. It reports whether the tray
// asked to quit. Every goroutine it starts has ended when it returns; a PIN
// operation in progress is cancelled (its prompt closed) first.
func (h *Host) Serve(ctx context.Context, r io.ReadCloser, w io.WriteCloser) (quit bool, err error) {
	log := h.Log
	if log == nil {
		log = zap.NewNop()
	}
	refresh := h.Refresh
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	c := trayproto.NewConn(r, w)
	ctx, cancel := context.WithCancel(ctx)
	// Closing the pipes is what ends a blocked read or write.
	context.AfterFunc(ctx, func() {
		_ = r.Close()
		_ = w.Close()
	})

	// Events only mark the status dirty: the writer sends the latest status,
	// so a burst of events never queues up behind a slow tray.
	dirty := make(chan wire.EventKind, 1)
	// A session's end is told to the tray (it says so in a notification):
	// it has its own channel so that a burst of card events never drops it.
	ended := make(chan struct{}, 1)
	mark := func(ch chan wire.EventKind, kind wire.EventKind) {
		select {
		case ch <- kind:
		default:
		}
	}
	unsubscribe := h.Backend.Subscribe(func(ev wire.Event) {
		if ev.Kind == wire.EventSessionEnded {
			select {
			case ended <- struct{}{}:
			default:
			}
			return
		}
		mark(dirty, ev.Kind)
	})
	defer unsubscribe()

	results := make(chan trayproto.Message, 4)
	var (
		wg       sync.WaitGroup
		opMu     sync.Mutex
		opCancel context.CancelFunc // the PIN operation in progress
	)
	defer func() {
		opMu.Lock()
		if opCancel != nil {
			opCancel()
		}
		opMu.Unlock()
		cancel()
		wg.Wait()
	}()

	// Writer: the status when dirty, results as they come, and the status
	// again when it changed without an event (checked every refresh).
	werr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(refresh)
		defer tick.Stop()
		var last []byte // the last status sent, encoded
		send := func(kind wire.EventKind, onlyIfChanged bool) error {
			st := h.Backend.Status()
			m := trayproto.Message{Type: trayproto.TypeStatus, Status: &st, Event: kind}
			if h.Info != nil {
				info := h.Info()
				m.Agent = &info
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if onlyIfChanged && bytes.Equal(b, last) {
				return nil
			}
			last = b
			return c.WriteRaw(b)
		}
		err := send("", false)
		for err == nil {
			select {
			case <-ctx.Done():
				return
			case kind := <-dirty:
				err = send(kind, false)
			case <-ended:
				err = send(wire.EventSessionEnded, false)
			case <-tick.C:
				err = send("", true)
			case m := <-results:
				err = c.Write(m)
			}
		}
		werr <- err
		cancel()
	}()

	// Reader (this goroutine): requests. ctx ending does not interrupt a
	// blocked read: the supervisor closes the pipe to end it.
	type readResult struct {
		m   trayproto.Message
		err error
	}
	reads := make(chan readResult)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := c.Read()
			select {
			case reads <- readResult{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	reply := func(m trayproto.Message) {
		select {
		case results <- m:
		case <-ctx.Done():
		}
	}
	for {
		var rr readResult
		select {
		case <-ctx.Done():
			select {
			case err := <-werr:
				if quit || trayGone(err) {
					return quit, nil
				}
				return quit, fmt.Errorf("writing to the tray: %w", err)
			default:
			}
			return quit, nil
		case rr = <-reads:
		}
		if rr.err != nil {
			if errors.Is(rr.err, io.EOF) || trayGone(rr.err) {
				return quit, nil
			}
			return quit, rr.err
		}
		m := rr.m
		if m.Type != trayproto.TypeRequest {
			log.Warn("tray sent an unexpected message", zap.String("type", m.Type))
			continue
		}
		switch m.Action {
		case trayproto.ActionRefresh:
			mark(dirty, "")
		case trayproto.ActionQuit:
			log.Info("quit requested from the tray")
			quit = true
			reply(trayproto.Message{Type: trayproto.TypeResult, ID: m.ID, OK: true})
		case trayproto.ActionChangePIN, trayproto.ActionUnblockPIN:
			opMu.Lock()
			if opCancel != nil {
				opMu.Unlock()
				reply(resultFor(m.ID, agent.ErrBusy))
				continue
			}
			octx, ocancel := context.WithCancel(ctx)
			opCancel = ocancel
			opMu.Unlock()
			wg.Add(1)
			go func(m trayproto.Message) {
				defer wg.Done()
				var err error
				if m.Action == trayproto.ActionChangePIN {
					err = h.Backend.ChangePIN(octx, h.Prompter)
				} else {
					err = h.Backend.UnblockPIN(octx, h.Prompter)
				}
				opMu.Lock()
				opCancel = nil
				opMu.Unlock()
				ocancel()
				reply(resultFor(m.ID, err))
				mark(dirty, "") // the PIN counter may have changed
			}(m)
		default:
			log.Warn("tray sent an unknown request", zap.String("action", m.Action))
			reply(trayproto.Message{Type: trayproto.TypeResult, ID: m.ID, Error: &trayproto.ResultError{Code: wire.CodeBadRequest, Message: "unknown request", TriesLeft: -1}})
		}
	}
}

// trayGone tells whether a write failed because the tray closed its end.
func trayGone(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE)
}

func resultFor(id int64, err error) trayproto.Message {
	if err == nil {
		return trayproto.Message{Type: trayproto.TypeResult, ID: id, OK: true}
	}
	e := agent.Classify(err)
	return trayproto.Message{Type: trayproto.TypeResult, ID: id, Error: &trayproto.ResultError{Code: e.Code, Message: e.Message, TriesLeft: e.TriesLeft}}
}
