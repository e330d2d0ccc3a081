package expiry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

var testPKI = sync.OnceValues(testpki.New)

// summaries issues a test card whose certificates have daysLeft days left
// at now and summarises them as the agent does.
func summaries(t *testing.T, daysLeft int, now time.Time) []certinfo.Summary {
	t.Helper()
	p, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.IssueCard(testpki.CardSpec{DaysLeft: daysLeft, KeyType: testpki.P256, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return []certinfo.Summary{
		certinfo.Summarise("9a", c.AuthCert, now),
		certinfo.Summarise("9c", c.SignCert, now),
	}
}

func TestCheckCardWithTestCertificates(t *testing.T) {
	now := time.Date(2025, 11, 21, 10, 0, 0, 0, time.UTC)
	want := map[int]Level{400: OK, 60: Warning, 10: Urgent, -1: Expired}
	for _, days := range testpki.ExpiryCases {
		t.Run(fmt.Sprintf("%dd", days), func(t *testing.T) {
			wantLevel, ok := want[days]
			if !ok {
				t.Fatalf("no expectation for %d days: testpki.ExpiryCases changed", days)
			}
			got := DefaultPolicy().CheckCard(summaries(t, days, now))
			if got.Level != wantLevel {
				t.Errorf("level %v, want %v", got.Level, wantLevel)
			}
			if got.DaysLeft != days {
				t.Errorf("days left %d, want %d", got.DaysLeft, days)
			}
			msg := Message(got, "https://renew.example.nhs.uk")
			switch wantLevel {
			case OK:
				if msg != "" {
					t.Errorf("message for a valid card: %q", msg)
				}
			case Expired:
				if !strings.Contains(msg, "Registration Authority") || !strings.Contains(msg, "expired") {
					t.Errorf("expired message %q does not send the user to the RA", msg)
				}
			default:
				if !strings.Contains(msg, fmt.Sprintf("expires in %d days", days)) || !strings.Contains(msg, "https://renew.example.nhs.uk") {
					t.Errorf("warning message %q lacks the days left or the renewal page", msg)
				}
			}
		})
	}
}

func TestClassifyThresholds(t *testing.T) {
	for _, tc := range []struct {
		policy  Policy
		days    int
		expired bool
		want    Level
	}{
		{Policy{}, 90, false, OK}, // zero policy = defaults: 90 days left is outside the window
		{Policy{}, 89, false, Warning},
		{Policy{}, 14, false, Warning},
		{Policy{}, 13, false, Urgent},
		{Policy{}, 0, false, Urgent},
		{Policy{}, 0, true, Expired},
		{Policy{}, -5, false, Expired},
		{Policy{WarnDays: 30, UrgentDays: 7}, 60, false, OK},
		{Policy{WarnDays: 30, UrgentDays: 7}, 29, false, Warning},
		{Policy{WarnDays: 30, UrgentDays: 7}, 6, false, Urgent},
		{Policy{WarnDays: 10, UrgentDays: 50}, 9, false, Urgent}, // urgent capped at the window
		{Policy{WarnDays: 10, UrgentDays: 50}, 10, false, OK},
	} {
		t.Run(fmt.Sprintf("%+v/%d/%v", tc.policy, tc.days, tc.expired), func(t *testing.T) {
			if got := tc.policy.Classify(tc.days, tc.expired); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpiresIn(t *testing.T) {
	for _, tc := range []struct {
		days    int
		expired bool
		want    string
	}{
		{23, false, "expires in 23 days"},
		{1, false, "expires tomorrow"},
		{0, false, "expires today"},
		{0, true, "expired"},
		{-1, false, "expired"},
	} {
		if got := ExpiresIn(tc.days, tc.expired); got != tc.want {
			t.Errorf("ExpiresIn(%d, %v) = %q, want %q", tc.days, tc.expired, got, tc.want)
		}
	}
}

func TestSoonest(t *testing.T) {
	now := time.Now()
	a := certinfo.Summary{Usage: "authentication", NotAfter: now.Add(50 * 24 * time.Hour), DaysLeft: 50}
	b := certinfo.Summary{Usage: "signature", NotAfter: now.Add(20 * 24 * time.Hour), DaysLeft: 20}
	got, ok := Soonest([]certinfo.Summary{a, b})
	if !ok || got.Usage != "signature" {
		t.Errorf("Soonest = %+v, %v; want the signature certificate", got, ok)
	}
	if _, ok := Soonest(nil); ok {
		t.Error("Soonest(nil) found a certificate")
	}
	if c := DefaultPolicy().CheckCard(nil); c.Level != OK {
		t.Errorf("card without certificates: %v", c.Level)
	}
}

// memStore is a Store in memory that counts saves and can fail.
type memStore struct {
	m       map[string]string
	saves   int
	failErr error
}

func (s *memStore) Load() (map[string]string, error) {
	if s.failErr != nil {
		return nil, s.failErr
	}
	out := map[string]string{}
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *memStore) Save(m map[string]string) error {
	s.saves++
	if s.failErr != nil {
		return s.failErr
	}
	s.m = map[string]string{}
	for k, v := range m {
		s.m[k] = v
	}
	return nil
}

func TestAtMostOncePerDayPerCard(t *testing.T) {
	loc := time.FixedZone("test", 0)
	clock := time.Date(2025, 11, 21, 8, 0, 0, 0, loc)
	now := func() time.Time { return clock }
	store := &memStore{m: map[string]string{}}
	tr := &Tracker{Store: store, Now: now}

	due := func(card string) bool {
		t.Helper()
		d, err := tr.Due(card)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !due("card-A") {
		t.Fatal("first insertion of the day: no notification")
	}
	clock = clock.Add(3 * time.Hour) // re-inserted later the same day
	if due("card-A") {
		t.Error("second notification for card A on the same day")
	}
	if !due("card-B") {
		t.Error("another card did not get its own notification")
	}
	clock = clock.Add(13*time.Hour - time.Second) // 23:59:59 the same day
	if due("card-A") || due("card-B") {
		t.Error("notification repeated before midnight")
	}
	clock = clock.Add(2 * time.Second) // next day
	if !due("card-A") {
		t.Error("no notification on the next day")
	}

	// A new process (new Tracker) over the same store remembers today.
	tr2 := &Tracker{Store: store, Now: now}
	if d, err := tr2.Due("card-A"); err != nil || d {
		t.Errorf("after restart: due=%v err=%v; want not due", d, err)
	}
	if d, _ := tr2.Due("card-B"); !d {
		t.Error("after restart: card B (last notified yesterday) not due")
	}
}

func TestTrackerStoreFailureStillNotifiesOnce(t *testing.T) {
	store := &memStore{failErr: errors.New("disk full")}
	tr := &Tracker{Store: store}
	d, err := tr.Due("card")
	if !d || err == nil {
		t.Fatalf("due=%v err=%v; want due with the error reported", d, err)
	}
	if d, _ := tr.Due("card"); d {
		t.Error("a failing store made the notification repeat the same day")
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	fsPath := filepath.Join(dir, "state", "cardagent", "notified.json")
	st := FileStore{Path: fsPath}
	m, err := st.Load()
	if err != nil || len(m) != 0 {
		t.Fatalf("missing file: %v %v", m, err)
	}
	clock := time.Date(2025, 11, 21, 8, 0, 0, 0, time.UTC)
	tr := &Tracker{Store: st, Now: func() time.Time { return clock }}
	if d, err := tr.Due("abc"); !d || err != nil {
		t.Fatalf("due=%v err=%v", d, err)
	}
	m, err = st.Load()
	if err != nil || m["abc"] != "2025-11-21" {
		t.Fatalf("file holds %v (%v)", m, err)
	}
	fi, err := os.Stat(filepath.Dir(fsPath))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if err := os.WriteFile(fsPath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(); err == nil {
		t.Error("corrupt file loaded without error")
	}
	// A corrupt file is replaced, not fatal.
	tr2 := &Tracker{Store: st, Now: func() time.Time { return clock }}
	if d, err := tr2.Due("abc"); !d || err == nil {
		t.Errorf("corrupt state: due=%v err=%v; want due and the read error", d, err)
	}
	if m, err := st.Load(); err != nil || m["abc"] != "2025-11-21" {
		t.Errorf("corrupt file was not rewritten: %v %v", m, err)
	}
}

func TestPrune(t *testing.T) {
	now := time.Date(2025, 11, 21, 8, 0, 0, 0, time.UTC)
	days := map[string]string{
		"recent": "2025-11-20",
		"old":    "2025-01-01",
		"bad":    "yesterday",
	}
	for i := range maxEntries + 10 {
		days[fmt.Sprintf("card%04d", i)] = now.AddDate(0, 0, -(i % 30)).Format(dayLayout)
	}
	prune(days, now)
	if _, ok := days["old"]; ok {
		t.Error("an entry older than keepDays was kept")
	}
	if _, ok := days["bad"]; ok {
		t.Error("an unparsable entry was kept")
	}
	if len(days) > maxEntries {
		t.Errorf("%d entries kept, want at most %d", len(days), maxEntries)
	}
	if days["recent"] == "" {
		t.Error("a recent entry was dropped")
	}
}

func TestStateDir(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		goos string
		env  map[string]string
		want string
	}{
		{"linux", nil, "/home/u/.local/state"},
		{"linux", map[string]string{"XDG_STATE_HOME": "/xdg/state"}, "/xdg/state"},
		{"linux", map[string]string{"XDG_STATE_HOME": "relative"}, "/home/u/.local/state"},
		{"darwin", nil, "/home/u/Library/Application Support"},
		{"windows", map[string]string{"LOCALAPPDATA": `C:\Users\u\AppData\Local`}, `C:\Users\u\AppData\Local`},
	} {
		got, err := stateDir(tc.goos, env(tc.env), home)
		if err != nil || got != tc.want {
			t.Errorf("%s %v: %q %v, want %q", tc.goos, tc.env, got, err, tc.want)
		}
	}
	if _, err := stateDir("windows", env(nil), home); err == nil {
		t.Error("windows without LOCALAPPDATA: no error")
	}
}

func FuzzFileStoreLoad(f *testing.F) {
	f.Add([]byte(`{"a":"2025-11-21"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":1}`))
	// One directory for every input (t.TempDir per input made the target
	// spend its time creating and removing directories).
	p := filepath.Join(f.TempDir(), "n.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := FileStore{Path: p}.Load()
		if err == nil {
			prune(m, time.Now())
		}
	})
}
