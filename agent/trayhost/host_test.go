package trayhost

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/trayhost/trayhosttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/tray/trayproto"
)

func TestHostRefreshSendsOnlyChanges(t *testing.T) {
	b := trayhosttest.NewBackend()
	h := &Host{Backend: b, Refresh: 20 * time.Millisecond}
	ar, aw := io.Pipe()
	tr, tw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.Serve(ctx, tr, aw)
	}()
	c := trayproto.NewConn(ar, tw)
	read := func() trayproto.Message {
		t.Helper()
		ch := make(chan trayproto.Message, 1)
		go func() {
			m, err := c.Read()
			if err == nil {
				ch <- m
			}
		}()
		select {
		case m := <-ch:
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
		return trayproto.Message{}
	}
	if m := read(); m.Type != trayproto.TypeStatus || len(m.Status.Readers) != 0 {
		t.Fatalf("first message %+v", m)
	}
	// A change without an event (as after a failed sign-in) is sent by the refresh.
	st := b.Status()
	st.Readers = []wire.ReaderStatus{{Name: "R0"}}
	b.SetQuietly(st)
	if m := read(); len(m.Status.Readers) != 1 || m.Event != "" {
		t.Fatalf("refresh message %+v", m)
	}
	// Nothing changes: nothing is sent for several periods.
	got := make(chan trayproto.Message, 1)
	go func() {
		m, err := c.Read()
		if err == nil {
			got <- m
		}
	}()
	select {
	case m := <-got:
		t.Fatalf("unchanged status sent again: %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
	// An unknown request gets an error result; PINs have no field to travel in.
	if err := c.Write(trayproto.Message{Type: trayproto.TypeRequest, ID: 7, Action: "read_pin"}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Type != trayproto.TypeResult || m.ID != 7 || m.Error == nil || m.Error.Code != wire.CodeBadRequest {
			t.Errorf("result %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result for an unknown request")
	}
	cancel()
	<-done
}

func TestHostOneOperationAtATime(t *testing.T) {
	b := trayhosttest.NewBackend()
	release := make(chan struct{})
	b.Change = func(ctx context.Context, _ prompt.Prompter) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return prompt.ErrCancelled
		}
	}
	ar, aw := io.Pipe()
	tr, tw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h(b).Serve(ctx, tr, aw)
	}()
	c := trayproto.NewConn(ar, tw)
	msgs := make(chan trayproto.Message, 8)
	go func() {
		for {
			m, err := c.Read()
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	_ = c.Write(trayproto.Message{Type: trayproto.TypeRequest, ID: 1, Action: trayproto.ActionChangePIN})
	time.Sleep(50 * time.Millisecond)
	_ = c.Write(trayproto.Message{Type: trayproto.TypeRequest, ID: 2, Action: trayproto.ActionUnblockPIN})
	results := map[int64]trayproto.Message{}
	deadline := time.After(5 * time.Second)
	for len(results) < 1 {
		select {
		case m := <-msgs:
			if m.Type == trayproto.TypeResult {
				results[m.ID] = m
			}
		case <-deadline:
			t.Fatal("no busy result")
		}
	}
	if r, ok := results[2]; !ok || r.Error == nil || r.Error.Code != wire.CodeBusy {
		t.Errorf("second operation: %+v", results)
	}
	// Closing the tray cancels the operation in progress (its prompt closes).
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the host did not end")
	}
}

func h(b Backend) *Host { return &Host{Backend: b} }

// TestHostSessionEndedNotDropped: while the tray is slow to read, a burst
// of card events coalesces into one status, but a session's end still
// reaches the tray (it shows a notification for it).
func TestHostSessionEndedNotDropped(t *testing.T) {
	b := trayhosttest.NewBackend()
	h := &Host{Backend: b, Refresh: time.Hour}
	ar, aw := io.Pipe()
	tr, tw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.Serve(ctx, tr, aw)
	}()
	defer func() { cancel(); tw.Close(); ar.Close(); <-done }()
	// Nothing is read yet: the host's writer is blocked on its first status.
	time.Sleep(50 * time.Millisecond)
	for _, kind := range []wire.EventKind{wire.EventCardRemoved, wire.EventSessionEnded, wire.EventReaderAdded} {
		b.Set(b.Status(), kind)
	}
	c := trayproto.NewConn(ar, tw)
	msgs := make(chan trayproto.Message, 16)
	go func() {
		for {
			m, err := c.Read()
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	ended := 0
	for {
		select {
		case m := <-msgs:
			if m.Event == wire.EventSessionEnded {
				ended++
			}
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	if ended != 1 {
		t.Errorf("the tray got %d session_ended, want 1", ended)
	}
}
