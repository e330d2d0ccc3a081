// Package prompttest has prompt.Prompter helpers for tests.
//
// It has a function as a prompter, and a prompter a test can swap while an
// agent runs.
package prompttest

import (
	"context"
	"sync"

	"github.com/cardagent/cardagent/agent/prompt"
)

// Func is a function as a prompt.Prompter.
type Func func(ctx context.Context, req prompt.Request) ([]byte, error)

func (f Func) PIN(ctx context.Context, req prompt.Request) ([]byte, error) { return f(ctx, req) }

// Switch is a prompt.Prompter that hands each prompt to the one last Set,
// and counts the prompts since. With none set it answers
// prompt.ErrUnavailable.
type Switch struct {
	mu sync.Mutex
	p  prompt.Prompter
	n  int
}

// Set makes p answer the next prompts and starts the count afresh.
func (s *Switch) Set(p prompt.Prompter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p, s.n = p, 0
}

// Calls is the number of prompts since the last Set.
func (s *Switch) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *Switch) PIN(ctx context.Context, req prompt.Request) ([]byte, error) {
	s.mu.Lock()
	p := s.p
	s.n++
	s.mu.Unlock()
	if p == nil {
		return nil, prompt.ErrUnavailable
	}
	return p.PIN(ctx, req)
}

// NewSwitch returns a Switch that hands prompts to p.
func NewSwitch(p prompt.Prompter) *Switch { return &Switch{p: p} }

// Choose hands a card choice to the prompter last Set when it can choose
// (prompt.Chooser), and counts it as a prompt; otherwise it answers
// prompt.ErrUnavailable.
func (s *Switch) Choose(ctx context.Context, c prompt.Choice) (int, error) {
	s.mu.Lock()
	p := s.p
	s.n++
	s.mu.Unlock()
	ch, ok := p.(prompt.Chooser)
	if !ok {
		return -1, prompt.ErrUnavailable
	}
	return ch.Choose(ctx, c)
}
