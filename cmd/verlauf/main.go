// Command verlauf is the verlauf XMPP server and its command line.
//
//	verlauf serve [--config FILE]      run the server
//	verlauf user add|passwd|delete|list  manage accounts of the running server
//	verlauf export --user JID --out FILE  export one account (asks for its password)
//	verlauf import FILE…               import XEP-0227 files
//	verlauf version                    print the version
//
// With no config file, serve runs the zero-config server: domain localhost,
// a self-signed certificate generated on first start, and the embedded
// event store under ./data.
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

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

const usage = `usage: verlauf <command> [flags]

commands:
  serve     run the server (verlauf serve --config FILE)
  user      add, change, delete and list accounts of the running server
  export    write one account's data to a file (asks for its password)
  import    import XEP-0227 files into the running server
  bench     run the load tool against an XMPP server
  version   print the version

Run 'verlauf <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "verlauf:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stderr)
	case "user":
		return cmdUser(ctx, args[1:], os.Stdin, stdout, stderr)
	case "export":
		return cmdExport(ctx, args[1:], os.Stdin, stdout, stderr)
	case "import":
		return cmdImport(ctx, args[1:], os.Stdin, stdout, stderr)
	case "bench":
		return cmdBench(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "verlauf", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
