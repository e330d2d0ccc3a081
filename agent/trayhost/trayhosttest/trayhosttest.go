// Package trayhosttest has helpers for tests of the tray and its host: a
// Backend whose status and events the test sets.
package trayhosttest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
)

// Backend is a trayhost.Backend whose status and events the test sets.
type Backend struct {
	mu     sync.Mutex
	status wire.Status
	subs   map[int]func(wire.Event)
	next   int
	// Change and Unblock are called by ChangePIN and UnblockPIN; nil: they
	// succeed.
	Change, Unblock func(ctx context.Context, p prompt.Prompter) error
}

// NewBackend returns a Backend whose service is up with no reader.
func NewBackend() *Backend {
	return &Backend{status: wire.Status{Service: wire.ServiceUp, ExpiryWarningDays: 90}, subs: map[int]func(wire.Event){}}
}

func (b *Backend) Status() wire.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

func (b *Backend) Subscribe(fn func(wire.Event)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

// Set makes st the status and sends an event of kind to the subscribers.
func (b *Backend) Set(st wire.Status, kind wire.EventKind) {
	b.mu.Lock()
	b.status = st
	fns := make([]func(wire.Event), 0, len(b.subs))
	for _, fn := range b.subs {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(wire.Event{Kind: kind})
	}
}

// SetQuietly makes st the status without an event (as after a failed
// sign-in, which changes the PIN tries left).
func (b *Backend) SetQuietly(st wire.Status) {
	b.mu.Lock()
	b.status = st
	b.mu.Unlock()
}

func (b *Backend) ChangePIN(ctx context.Context, p prompt.Prompter) error {
	if b.Change == nil {
		return nil
	}
	return b.Change(ctx, p)
}

func (b *Backend) UnblockPIN(ctx context.Context, p prompt.Prompter) error {
	if b.Unblock == nil {
		return nil
	}
	return b.Unblock(ctx, p)
}

// WaitFor polls ok every 10 ms and fails t if it is not true within
// timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
