package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

const userUsage = `usage: verlauf user <add|passwd|delete|list> [JID] [--config FILE]

  add JID      create an account (asks for the password)
  passwd JID   set a new password (asks for it; old history stays sealed
               under the old password and becomes unreadable)
  delete JID   delete the account and everything it owns
  list         list the accounts

The server must be running: these talk to it through its admin socket.
The password is read from the terminal, or as one line from standard input
when that is not a terminal (for scripts).
`

func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userUsage) }
	configPath := fs.String("config", "", "the server's TOML config file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("user: no subcommand")
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	sock := adminSocketPath(cfg)
	op, rest := pos[0], pos[1:]
	req := adminRequest{Op: "user." + op}
	switch op {
	case "list":
		if len(rest) != 0 {
			return errors.New("user list: takes no arguments")
		}
	case "add", "passwd":
		if len(rest) != 1 {
			return fmt.Errorf("user %s: need exactly one JID", op)
		}
		req.JID = rest[0]
		if req.Password, err = readPassword(stdin, stderr, op == "add" || op == "passwd"); err != nil {
			return err
		}
	case "delete":
		if len(rest) != 1 {
			return errors.New("user delete: need exactly one JID")
		}
		req.JID = rest[0]
	default:
		fs.Usage()
		return fmt.Errorf("user: unknown subcommand %q", op)
	}
	resp, err := adminCall(ctx, sock, req)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("user %s: %s", op, resp.Error)
	}
	switch op {
	case "list":
		for _, u := range resp.Users {
			fmt.Fprintln(stdout, u)
		}
	case "add":
		fmt.Fprintf(stdout, "created %s\n", req.JID)
	case "passwd":
		fmt.Fprintf(stdout, "password of %s changed\n", req.JID)
	case "delete":
		fmt.Fprintf(stdout, "deleted %s\n", req.JID)
	}
	return nil
}

// readPassword asks twice on a terminal; from a pipe it reads one line.
func readPassword(stdin io.Reader, prompt io.Writer, confirm bool) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if confirm {
			fmt.Fprint(prompt, "Again: ")
			p2, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			if string(p1) != string(p2) {
				return "", errors.New("the passwords differ")
			}
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input")
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("user add alice --config f").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
