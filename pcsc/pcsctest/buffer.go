package pcsctest

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that one goroutine (a logger, a subprocess's
// output) may write while the test reads it. It is also a
// zapcore.WriteSyncer. Max, when set, bounds it: a write that would pass it
// starts the buffer afresh.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Max > 0 && s.b.Len()+len(p) > s.Max {
		s.b.Reset()
	}
	return s.b.Write(p)
}

// Sync does nothing: the buffer holds everything written.
func (s *Buffer) Sync() error { return nil }

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
