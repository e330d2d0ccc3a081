// Command cardagent-vcard runs TEST virtual smart cards for development and
// CI.
//
// It creates a test NHS-style PKI, issues a card, and keeps that card
// inserted into vsmartcard's vpcd reader (so pcscd and every PC/SC program
// see it) until interrupted. It also writes test certificates to disk.
//
//	cardagent-vcard insert [--addr 127.0.0.1:35963] [--type piv|series8] [--days 400] [--pin 123456] [--puk 12345678] [--certs-out DIR]
//	cardagent-vcard gen-certs -out DIR
//
// Everything it makes is marked TEST and is useless outside tests.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	log, err := cfg.Build()
	if err == nil {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr, log.Named("vcard"))
		log.Sync()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cardagent-vcard:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
