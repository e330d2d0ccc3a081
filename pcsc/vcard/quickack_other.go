//go:build !linux

package vcard

import "net"

// quickAck is a Linux-only optimisation (TCP_QUICKACK); elsewhere it does nothing.
func quickAck(net.Conn) {}
