// Command benchtool makes the measurements of scripts/bench that need more
// than a shell.
//
// It measures how long `cardagent run` takes from process start to an
// answering API, how much later than a bare SCardGetStatusChange watcher the
// agent's WebSocket clients hear of a card inserted or removed, and what one
// sign-in allocates in the agent.
//
//	benchtool startup -agent bin/cardagent -config FILE -port P -origin O [-runs 15]
//	benchtool latency -port P -origin O -vpcd 127.0.0.1:PORT -reader NAME [-n 30]
//	benchtool signin-alloc [-reader NAME] [-pin PIN] [-n 1000]
//
// latency needs the agent running with O allowed, and the reader's vpcd
// slot free: it inserts and removes its own virtual card there. Both print
// one line per figure, "name value unit", for scripts/bench to tabulate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool startup|latency|signin-alloc [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "startup":
		err = startup(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:])
	case "signin-alloc":
		err = signinAlloc(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

// startup starts the agent runs times and measures from just before the
// process starts to the first 200 from GET /cardagent/v1/info.
func startup(args []string) error {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	agent := fs.String("agent", "bin/cardagent", "the cardagent binary")
	config := fs.String("config", "", "configuration file (its listen.port must be -port)")
	port := fs.Int("port", 0, "the agent's port")
	origin := fs.String("origin", "", "an allowed origin")
	runs := fs.Int("runs", 15, "how many starts")
	fs.Parse(args)
	if *config == "" || *port == 0 || *origin == "" {
		return errors.New("startup needs -config, -port and -origin")
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/cardagent/v1/info", *port)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	probe := func() bool {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Origin", *origin)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if probe() {
		return fmt.Errorf("something already answers on port %d", *port)
	}
	var times []time.Duration
	for range *runs {
		cmd := exec.Command(*agent, "run", "--config", *config, "--log-dir", "none", "--log-level", "warn")
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		ready := time.Duration(0)
		for time.Since(start) < 10*time.Second {
			if probe() {
				ready = time.Since(start)
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if ready == 0 {
			return errors.New("the agent's API did not answer within 10 s")
		}
		times = append(times, ready)
		// Let the port and pcscd settle between runs.
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("startup_ms_p50 %s\nstartup_ms_min %s\nstartup_ms_max %s\nstartup_runs %d\n",
		ms(pct(times, 0.5)), ms(slices.Min(times)), ms(slices.Max(times)), len(times))
	return nil
}

// observation is one change seen by the watcher or the agent's client.
type observation struct {
	present bool
	at      time.Time
}

// watch reports every presence change of reader, as seen by a bare
// SCardGetStatusChange loop on its own PC/SC context.
func watch(ctx context.Context, reader string, out chan<- observation) error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return fmt.Errorf("PC/SC: %w", err)
	}
	go func() {
		<-ctx.Done()
		sc.Cancel()
	}()
	defer sc.Release()
	st := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	if err := sc.GetStatusChange(st, 0); err != nil {
		return err
	}
	present := st[0].EventState&scard.StatePresent != 0
	st[0].CurrentState = st[0].EventState &^ scard.StateChanged
	for ctx.Err() == nil {
		if err := sc.GetStatusChange(st, -1); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		st[0].CurrentState = st[0].EventState &^ scard.StateChanged
		if p := st[0].EventState&scard.StatePresent != 0; p != present {
			present = p
			out <- observation{p, now}
		}
	}
	return nil
}

// latency inserts and removes a virtual card n times and compares when the
// bare watcher and the agent's WebSocket client saw each change.
func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	port := fs.Int("port", 0, "the agent's port")
	origin := fs.String("origin", "", "an allowed origin")
	vpcd := fs.String("vpcd", "", "vpcd address of the slot to use (host:port)")
	reader := fs.String("reader", "Virtual PCD 00 01", "the PC/SC reader of that slot")
	n := fs.Int("n", 30, "insert/remove cycles")
	fs.Parse(args)
	if *port == 0 || *origin == "" || *vpcd == "" {
		return errors.New("latency needs -port, -origin and -vpcd")
	}
	pki, err := testpki.New()
	if err != nil {
		return err
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{DaysLeft: 400})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan observation, 16)
	werr := make(chan error, 1)
	go func() { werr <- watch(ctx, *reader, seen) }()

	ws, _, err := (&websocket.Dialer{}).Dial(fmt.Sprintf("ws://127.0.0.1:%d/cardagent/v1/ws", *port), http.Header{"Origin": {*origin}})
	if err != nil {
		return fmt.Errorf("connecting to the agent: %w", err)
	}
	defer ws.Close()
	events := make(chan observation, 16)
	ready := make(chan observation, 16) // card_inserted: the card is read
	go func() {
		for {
			var m struct {
				Type, Event, Reader string
				Card                *struct{ State string }
			}
			if err := ws.ReadJSON(&m); err != nil {
				close(events)
				return
			}
			now := time.Now()
			if m.Type != "event" || m.Reader != *reader {
				continue
			}
			switch m.Event {
			case "card_reading":
				events <- observation{true, now}
			case "card_inserted":
				ready <- observation{true, now}
			case "card_removed":
				events <- observation{false, now}
			}
		}
	}()

	wait := func(ch <-chan observation, want bool, what string) (time.Time, error) {
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		for {
			select {
			case o, ok := <-ch:
				if !ok {
					return time.Time{}, fmt.Errorf("%s: stream ended", what)
				}
				if o.present == want {
					return o.at, nil
				}
			case err := <-werr:
				return time.Time{}, fmt.Errorf("watcher: %v", err)
			case <-timer.C:
				return time.Time{}, fmt.Errorf("%s did not see the card %s within 5 s", what, map[bool]string{true: "inserted", false: "removed"}[want])
			}
		}
	}
	var ins, rdy, rem, read []time.Duration
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range *n {
		slot, err := vcard.Insert(*vpcd, card, vcard.Options{})
		if err != nil {
			return err
		}
		tw, err := wait(seen, true, "the watcher")
		if err != nil {
			return err
		}
		ta, err := wait(events, true, "the agent")
		if err != nil {
			return err
		}
		ins = append(ins, ta.Sub(tw))
		tr, err := wait(ready, true, "the agent (card_inserted)")
		if err != nil {
			return err
		}
		rdy = append(rdy, tr.Sub(tw))
		// What reading a newly inserted card costs (the agent does the
		// same between card_reading and card_inserted): identify, open,
		// certificates, PIN tries.
		if d, err := readCard(*reader); err == nil {
			read = append(read, d)
		} else if i == 0 {
			fmt.Fprintln(os.Stderr, "benchtool: reading the card directly:", err)
		}
		time.Sleep(time.Duration(150+rng.IntN(300)) * time.Millisecond)
		slot.Remove()
		tw, err = wait(seen, false, "the watcher")
		if err != nil {
			return err
		}
		ta, err = wait(events, false, "the agent")
		if err != nil {
			return err
		}
		rem = append(rem, ta.Sub(tw))
		time.Sleep(time.Duration(150+rng.IntN(300)) * time.Millisecond)
	}
	cancel()
	all := append(slices.Clone(ins), rem...)
	fmt.Printf("event_removed_ms_p50 %s\nevent_removed_ms_p95 %s\nevent_removed_ms_p99 %s\n", ms(pct(rem, 0.5)), ms(pct(rem, 0.95)), ms(pct(rem, 0.99)))
	fmt.Printf("event_inserted_ms_p50 %s\nevent_inserted_ms_p95 %s\nevent_inserted_ms_p99 %s\n", ms(pct(ins, 0.5)), ms(pct(ins, 0.95)), ms(pct(ins, 0.99)))
	fmt.Printf("event_ready_ms_p50 %s\nevent_ready_ms_p99 %s\n", ms(pct(rdy, 0.5)), ms(pct(rdy, 0.99)))
	fmt.Printf("event_all_ms_p50 %s\nevent_all_ms_p99 %s\n", ms(pct(all, 0.5)), ms(pct(all, 0.99)))
	if len(read) == len(rdy) {
		// card_inserted follows the agent's reading of the card: what it
		// adds on top of reading the card, cycle by cycle.
		over := make([]time.Duration, len(rdy))
		for i := range rdy {
			over[i] = rdy[i] - read[i]
		}
		fmt.Printf("card_read_ms_p50 %s\ncard_read_ms_p99 %s\n", ms(pct(read, 0.5)), ms(pct(read, 0.99)))
		fmt.Printf("event_ready_less_read_ms_p50 %s\nevent_ready_less_read_ms_p99 %s\n", ms(pct(over, 0.5)), ms(pct(over, 0.99)))
	}
	fmt.Printf("event_cycles %d\n", *n)
	return nil
}

// readCard connects to the card in reader as the agent does and reads what
// the agent reads at insertion, returning how long that took.
func readCard(reader string) (time.Duration, error) {
	ctx := context.Background()
	start := time.Now()
	sess, err := pcsc.Open(ctx, zap.NewNop(), reader)
	if err != nil {
		return 0, err
	}
	card, _, err := drivers.Open(ctx, zap.NewNop(), sess, drivers.Options{})
	if err != nil {
		sess.Close()
		return 0, err
	}
	defer card.Close()
	if _, err := card.Certificates(ctx); err != nil {
		return 0, err
	}
	if _, err := card.PINStatus(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
