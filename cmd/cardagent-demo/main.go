// Command cardagent-demo is cardagent's TEST relying party.
//
// It serves a sign-in page that uses the JS client to reach the agent, and
// verifies the token it returns (package demo has the site; this is a thin
// main).
//
//	cardagent-vcard insert --certs-out DIR &
//	cardagent-demo --pki DIR [--listen 127.0.0.1:8443] [--origin https://localhost:8443] [--http] [--client web/cardagent-client/cardagent.js]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	log, err := cfg.Build()
	if err == nil {
		err = demo.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, log.Named("demo"))
		log.Sync()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cardagent-demo:", err)
		if errors.Is(err, demo.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
