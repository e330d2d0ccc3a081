package pcsc

import (
	"context"
	"errors"
	"testing"
)

func TestListReaders(t *testing.T) {
	cases := []struct {
		name    string
		readers []string
		setup   func(f *fakePCSC)
		want    []ReaderStatus
		wantErr error
	}{
		{
			name:    "cards, empty and mute",
			readers: []string{"A", "B", "C"},
			setup: func(f *fakePCSC) {
				f.insert("A", atrA)
				f.insertMute("C")
			},
			want: []ReaderStatus{{Name: "A", Present: true, ATR: atrA}, {Name: "B"}, {Name: "C", Present: true, Mute: true}},
		},
		{
			name:    "card removed again",
			readers: []string{"A"},
			setup:   func(f *fakePCSC) { f.insert("A", atrA); f.remove("A") },
			want:    []ReaderStatus{{Name: "A"}},
		},
		{
			name: "no reader",
			want: []ReaderStatus{},
		},
		{
			name:    "service down",
			readers: []string{"A"},
			setup:   func(f *fakePCSC) { f.stop() },
			wantErr: ErrServiceUnavailable,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePCSC(tc.readers...)
			if tc.setup != nil {
				tc.setup(f)
			}
			useFake(t, f)
			got, err := ListReaders(context.Background())
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ListReaders error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (got == nil || !sameStatus(got, tc.want)) {
				t.Errorf("ListReaders = %+v, want %+v", got, tc.want)
			}
			if e, r := f.contexts.Load(), f.released.Load(); e != r {
				t.Errorf("%d contexts established, %d released", e, r)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		f := newFakePCSC("A")
		useFake(t, f)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ListReaders(ctx); !errors.Is(err, ErrCancelled) {
			t.Errorf("ListReaders = %v, want ErrCancelled", err)
		}
		if f.establish.Load() != 0 {
			t.Error("a cancelled ListReaders still talked to PC/SC")
		}
	})
}
