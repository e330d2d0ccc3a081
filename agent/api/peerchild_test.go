package api

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// runPeerChild is the client side of the other-user test: when the test
// binary is started with CARDAGENT_TEST_PEER_URL it dials that WebSocket URL
// with CARDAGENT_TEST_PEER_ORIGIN, prints the HTTP status and exits.
func runPeerChild() bool {
	url := os.Getenv("CARDAGENT_TEST_PEER_URL")
	if url == "" {
		return false
	}
	h := http.Header{"Origin": {os.Getenv("CARDAGENT_TEST_PEER_ORIGIN")}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, h)
	switch {
	case err == nil:
		fmt.Println("status", resp.StatusCode)
		c.Close()
	case resp != nil:
		fmt.Println("status", resp.StatusCode)
	default:
		fmt.Println("error", err)
	}
	os.Exit(0)
	return true
}

// runFloodChild is the other user of the flood test: when the test binary
// is started with CARDAGENT_TEST_FLOOD_ADDRS (space-separated host:port) it
// opens connections to them as fast as it can, sends each a request the
// agent refuses (wrong Origin) and holds up to floodHold of them open, as
// an attacker starving the agent of descriptors would. It prints the number
// of connections made every 200 ms and runs until killed (at most a minute).
func runFloodChild() bool {
	addrs := strings.Fields(os.Getenv("CARDAGENT_TEST_FLOOD_ADDRS"))
	if len(addrs) == 0 {
		return false
	}
	const workers, holdPerWorker = 64, 50 // floodHold = 3,200 connections
	var dials atomic.Int64
	for w := range workers {
		go func() {
			addr := addrs[w%len(addrs)]
			var held []net.Conn
			for {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					time.Sleep(time.Millisecond)
					continue
				}
				dials.Add(1)
				_, _ = c.Write([]byte("GET " + PathInfo + " HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: https://evil.example\r\n\r\n"))
				held = append(held, c)
				if len(held) > holdPerWorker {
					held[0].Close()
					held = held[1:]
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		fmt.Println("dials", dials.Load())
	}
	os.Exit(0)
	return true
}
