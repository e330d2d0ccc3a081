package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// signinAlloc measures what one sign-in allocates in the agent: the card
// service (PC/SC, driver, token) signs n challenges with the card in
// reader, whose virtual card runs in another process (cardagent-vcard), so
// only the agent's side is counted.
func signinAlloc(args []string) error {
	fs := flag.NewFlagSet("signin-alloc", flag.ExitOnError)
	reader := fs.String("reader", "Virtual PCD 00 00", "the PC/SC reader holding the card")
	pin := fs.String("pin", vpiv.DefaultPIN, "the card's PIN")
	n := fs.Int("n", 1000, "sign-ins")
	fs.Parse(args)

	svc := &agent.CardService{Log: zap.NewNop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !ready(svc.Status(), *reader) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no ready card in %q", *reader)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(*pin), nil })
	const challenge = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"
	sign := func() error {
		_, err := svc.Authenticate(ctx, "https://signin.bench.test", challenge, p)
		return err
	}
	for i := 0; i < 10; i++ { // warm up: the connection's buffer, caches
		if err := sign(); err != nil {
			return fmt.Errorf("sign-in: %w", err)
		}
	}
	if *n <= 0 {
		return errors.New("-n must be positive")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := 0; i < *n; i++ {
		if err := sign(); err != nil {
			return fmt.Errorf("sign-in: %w", err)
		}
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	fmt.Printf("signin_alloc_kib %.1f\n", float64(after.TotalAlloc-before.TotalAlloc)/float64(*n)/1024)
	fmt.Printf("signin_allocs %d\n", (after.Mallocs-before.Mallocs)/uint64(*n))
	fmt.Printf("signin_gcs %d\n", after.NumGC-before.NumGC)
	fmt.Printf("signin_n %d\n", *n)
	fmt.Printf("signin_ms %s\n", ms(took/time.Duration(*n)))
	return nil
}

func ready(st wire.Status, reader string) bool {
	for _, r := range st.Readers {
		if r.Name == reader && r.Card != nil && r.Card.State == wire.CardReady {
			return true
		}
	}
	return false
}
