package expiry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Store keeps, per card ID, the last day (local calendar date, "2006-01-02")
// a notification was shown.
type Store interface {
	Load() (map[string]string, error)
	Save(map[string]string) error
}

// dayLayout is how a day is written in the store.
const dayLayout = "2006-01-02"

// keepDays bounds the store: entries older than this are dropped on save.
const keepDays = 60

// maxEntries bounds the store on a desktop shared by many cards.
const maxEntries = 500

// Tracker decides whether a card's expiry notification is due: at most once
// per local calendar day per card, across restarts of the process.
type Tracker struct {
	// Store persists the days; nil keeps them in memory only.
	Store Store
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	loaded bool
	days   map[string]string
}

// Due reports whether a notification for cardID may be shown today and, if
// so, records today for it (so a second call the same day returns false).
// A store that cannot be read or written does not stop the notification:
// the day is still remembered in memory, and the error is returned with
// due == true so the caller can log it.
func (t *Tracker) Due(cardID string) (due bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	today := now().Format(dayLayout)
	if !t.loaded {
		t.loaded = true
		t.days = map[string]string{}
		if t.Store != nil {
			m, lerr := t.Store.Load()
			if lerr != nil {
				err = fmt.Errorf("reading notification state: %w", lerr)
			}
			for k, v := range m {
				t.days[k] = v
			}
		}
	}
	if t.days[cardID] == today {
		return false, err
	}
	t.days[cardID] = today
	prune(t.days, now())
	if t.Store != nil {
		if serr := t.Store.Save(t.days); serr != nil && err == nil {
			err = fmt.Errorf("saving notification state: %w", serr)
		}
	}
	return true, err
}

// prune drops unparsable and old entries, and the oldest beyond maxEntries.
func prune(days map[string]string, now time.Time) {
	cutoff := now.AddDate(0, 0, -keepDays).Format(dayLayout)
	for k, v := range days {
		if _, err := time.Parse(dayLayout, v); err != nil || v < cutoff {
			delete(days, k)
		}
	}
	for len(days) > maxEntries {
		oldK, oldV := "", ""
		for k, v := range days {
			if oldK == "" || v < oldV || (v == oldV && k < oldK) {
				oldK, oldV = k, v
			}
		}
		delete(days, oldK)
	}
}

// FileStore keeps the days in a small JSON file ({"card id": "2006-01-02"}).
type FileStore struct {
	Path string
}

// maxStateFile bounds what Load reads.
const maxStateFile = 1 << 20

// Load reads the file; a missing file is an empty store.
func (f FileStore) Load() (map[string]string, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", f.Path, maxStateFile)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return m, nil
}

// Save writes the file atomically (temporary file, then rename), creating
// its directory (mode 0700) when needed.
func (f FileStore) Save(m map[string]string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".notified-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}

// StatePath is where the tray keeps its notification state for this user:
// $XDG_STATE_HOME/cardagent/notified.json (default ~/.local/state) on Linux
// and other Unix systems, %LOCALAPPDATA%\cardagent\notified.json on Windows,
// ~/Library/Application Support/cardagent/notified.json on macOS.
func StatePath() (string, error) {
	dir, err := stateDir(runtime.GOOS, os.Getenv, os.UserHomeDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "cardagent", "notified.json"), nil
}

func stateDir(goos string, getenv func(string) string, home func() (string, error)) (string, error) {
	switch goos {
	case "windows":
		if d := getenv("LOCALAPPDATA"); d != "" {
			return d, nil
		}
		return "", errors.New("LOCALAPPDATA is not set")
	case "darwin":
		h, err := home()
		if err != nil {
			return "", err
		}
		return filepath.Join(h, "Library", "Application Support"), nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return d, nil
	}
	h, err := home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, ".local", "state"), nil
}
