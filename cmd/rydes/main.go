// Command rydes is the rydes quote broker and its command-line client.
//
//	rydes serve [flags]     run the broker (embedded NATS JetStream and SQLite)
//	rydes rfq create|get|watch|cancel [flags]
//	rydes providers add|list|get|pause|resume|rm|rotate|stats [flags]
//	rydes dead-letters list|replay [flags]
//	rydes audit list [flags]
//	rydes bench [load|get|hold] [flags]
//	rydes version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

const usage = `rydes: a scatter-gather quote broker.

Usage:
  rydes serve [flags]          run the broker; rydes serve -h lists the flags
  rydes rfq create [flags]     ask for quotes; --watch shows them live, --wait as lines
  rydes rfq get ID             show a request, its providers and quotes
  rydes rfq watch ID           follow a request live until it ends
  rydes rfq cancel ID          cancel an open request
  rydes bench [load|get|hold]  load-test rydes (one it starts, or --url);
                               rydes bench -h lists the flags
  rydes version                print the version

Admin commands (they need the admin key, best set as RYDES_ADMIN_KEY):
  rydes providers add ID --kind nats|webhook [flags]
                               register a provider; prints its credentials once
  rydes providers list         list the providers
  rydes providers get ID       show a provider
  rydes providers pause ID     stop asking a provider for new requests
  rydes providers resume ID    ask a paused provider again
  rydes providers rm ID        remove a provider
  rydes providers rotate ID    replace a provider's credentials
  rydes providers stats ID     show a provider's answers, latency and queue
  rydes dead-letters list      list failed webhook deliveries
  rydes dead-letters replay ID
                               deliver a dead letter again
  rydes audit list             list the audit log of admin changes

Every flag of serve and rfq can also be set with an environment variable
RYDES_<FLAG>, e.g. RYDES_HTTP=127.0.0.1:9090 for --http; a flag on the
command line wins. The admin commands read only RYDES_SERVER,
RYDES_ADMIN_KEY and RYDES_CA.

HTTPS: serve --tls-cert FILE --tls-key FILE serves the API over TLS only;
the commands that talk to a server take --server https://... and, for a
private certificate authority, --ca FILE (or RYDES_CA).
`

// run is the whole program: main only calls it. args includes the program
// name; getenv reads the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return exitError{code: 2, err: errors.New("missing command")}
	}
	switch cmd, rest := args[1], args[2:]; cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "rfq":
		return runRFQ(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "providers", "dead-letters", "audit":
		return runAdmin(ctx, cmd, rest, getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "rydes", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return exitError{code: 2, err: fmt.Errorf("unknown command %q", cmd)}
	}
}

// exitCode prints err, if any, and returns the process's exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "rydes:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "rydes:", err)
	return 1
}
