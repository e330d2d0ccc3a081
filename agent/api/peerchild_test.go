package api

import (
	"fmt"
	"net/http"
	"os"
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
