package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ChallengeStore issues challenges and makes each one single-use. A relying
// party with several web servers plugs in a shared implementation (a database
// row deleted in a transaction, Redis GETDEL, ...); MemoryStore serves one
// process.
type ChallengeStore interface {
	// Issue returns a new random challenge (base64url, no padding, of at
	// least ChallengeBytes random bytes) that Consume accepts once, until ttl
	// has passed.
	Issue(ttl time.Duration) (string, error)
	// Consume atomically removes the challenge: of several concurrent calls
	// with one challenge, at most one returns nil. It returns an error
	// matching ErrUnknownChallenge, ErrChallengeReused or ErrChallengeExpired.
	Consume(challenge string) error
}

// ChallengeBytes is the number of random bytes in an issued challenge.
const ChallengeBytes = 32

// DefaultChallengeTTL is how long a challenge stays valid when nothing else is said.
const DefaultChallengeTTL = 2 * time.Minute

// DefaultMaxChallenges bounds a MemoryStore (issued, not yet expired challenges,
// used ones included until they expire).
const DefaultMaxChallenges = 65536

// ErrStoreFull is returned by MemoryStore.Issue when MaxEntries unexpired
// challenges are outstanding. The store refuses new challenges rather than
// dropping outstanding ones, so a flood of requests cannot cancel the
// challenges of people signing in; rate-limit challenge requests in front of it.
var ErrStoreFull = errors.New("too many outstanding challenges")

// MemoryStore is the default ChallengeStore: an in-memory map, safe for
// concurrent use, with expiry and a bound on its size. A consumed challenge
// is remembered until it would have expired, so a replay within that time
// reports challenge_reused and a later one unknown_challenge. It starts no
// goroutine: expired entries are swept while issuing.
type MemoryStore struct {
	// MaxEntries bounds the number of remembered challenges (default
	// DefaultMaxChallenges). Set before first use.
	MaxEntries int
	// Now is the clock (default time.Now). Set before first use.
	Now func() time.Time

	mu        sync.Mutex
	entries   map[string]*challengeEntry
	lastSweep time.Time
}

type challengeEntry struct {
	expires time.Time
	used    bool
}

// sweepEvery is how often Issue drops expired entries when the store is not full.
const sweepEvery = time.Minute

// NewMemoryStore returns an empty MemoryStore with the defaults.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{MaxEntries: DefaultMaxChallenges, Now: time.Now, entries: make(map[string]*challengeEntry)}
}

func (s *MemoryStore) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// init runs with s.mu held.
func (s *MemoryStore) init() {
	if s.entries == nil {
		s.entries = make(map[string]*challengeEntry)
	}
}

// Issue implements ChallengeStore: 32 random bytes, base64url without padding
// (43 characters).
func (s *MemoryStore) Issue(ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("issuing challenge: ttl %v is not positive", ttl)
	}
	var b [ChallengeBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("issuing challenge: %w", err)
	}
	c := base64.RawURLEncoding.EncodeToString(b[:])
	if err := s.add(c, ttl); err != nil {
		return "", fmt.Errorf("issuing challenge: %w", err)
	}
	return c, nil
}

// Add remembers a challenge issued elsewhere (for example by another
// process, as `cardagent verify --challenge` does) so that Consume accepts it
// once within ttl. Adding a challenge the store already holds fails.
func (s *MemoryStore) Add(challenge string, ttl time.Duration) error {
	if challenge == "" {
		return errors.New("adding challenge: empty challenge")
	}
	if ttl <= 0 {
		return fmt.Errorf("adding challenge: ttl %v is not positive", ttl)
	}
	if err := s.add(challenge, ttl); err != nil {
		return fmt.Errorf("adding challenge: %w", err)
	}
	return nil
}

func (s *MemoryStore) add(c string, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	limit := s.MaxEntries
	if limit <= 0 {
		limit = DefaultMaxChallenges
	}
	if len(s.entries) >= limit || now.Sub(s.lastSweep) >= sweepEvery {
		s.sweep(now)
	}
	if len(s.entries) >= limit {
		return ErrStoreFull
	}
	if _, ok := s.entries[c]; ok {
		return errors.New("challenge already issued")
	}
	s.entries[c] = &challengeEntry{expires: now.Add(ttl)}
	return nil
}

// sweep drops expired entries; s.mu is held.
func (s *MemoryStore) sweep(now time.Time) {
	for c, e := range s.entries {
		if !now.Before(e.expires) {
			delete(s.entries, c)
		}
	}
	s.lastSweep = now
}

// Consume implements ChallengeStore.
func (s *MemoryStore) Consume(challenge string) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[challenge]
	switch {
	case !ok:
		return newError(ReasonUnknownChallenge, "challenge was not issued here, or is long gone")
	case !now.Before(e.expires):
		delete(s.entries, challenge)
		if e.used {
			return newError(ReasonUnknownChallenge, "challenge was not issued here, or is long gone")
		}
		return newError(ReasonChallengeExpired, "challenge expired")
	case e.used:
		return newError(ReasonChallengeReused, "challenge was already used")
	}
	e.used = true
	return nil
}

// Len returns the number of remembered challenges (outstanding and used,
// expired ones not yet swept included).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
