// Command airlock is the release gate for AI models: it packages a model,
// its tokenizer, prompts and safety settings as one OCI artifact, moves it
// between registries, and (as later commands land) signs, evaluates, gates,
// promotes and admits it. See README.md and `airlock --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock-dev/airlock/cmd/airlock/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
