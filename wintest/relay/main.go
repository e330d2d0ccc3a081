// Command relay forwards loopback TCP connections to another address.
//
// The Wine tests (wintest) run it as a Windows program: cardagent.exe
// accepts a connection only from a process of its own user and session,
// which it finds with GetExtendedTcpTable, and a Linux program talking to
// Wine's loopback is no Windows process at all (refused: "peer socket not
// found"). Through this relay, itself a process of the same Wine session,
// the Linux-side test client reaches the agent as a Windows browser would.
//
//	relay -to 127.0.0.1:PORT [-listen 127.0.0.1:0]
//
// It prints the address it listens on as its first line of output, then
// serves until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	to := flag.String("to", "", "address to forward every connection to")
	flag.Parse()
	if *to == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: relay -to HOST:PORT [-listen HOST:PORT]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		go forward(c, *to)
	}
}

// forward copies both ways between c and a new connection to addr, and
// closes both when either side is done.
func forward(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		// Half-close so the other direction can finish its last bytes.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
}
