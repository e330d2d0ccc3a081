// Command cardagent is the desktop smart-card agent. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cardagent/cardagent/agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
