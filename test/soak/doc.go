// Package soak holds the soak and load tests.
//
// They run the agent (card service and loopback API, in process, over a
// private pcscd with vpcd and virtual PIV cards) under card insert/remove
// cycles every 100 ms with 50 connected WebSocket clients, and make 500
// connection attempts against the connection cap. `go test ./test/soak` runs
// about a minute; -soak=10m runs the cycles for longer.
package soak
