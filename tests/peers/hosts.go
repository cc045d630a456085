package peers

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

const hostsFile = "/etc/hosts"

// AddHosts adds name → loopback address lines to /etc/hosts, marked with
// the test's name so that they, and only they, are removed when the test
// ends. Only 127.x addresses are accepted: the tests must not redirect
// real names elsewhere.
func AddHosts(t testing.TB, entries map[string]string) {
	t.Helper()
	mark := "# verlauf-peers-test " + t.Name()
	for _, ip := range entries {
		if !strings.HasPrefix(ip, "127.") {
			t.Fatalf("%s: only loopback addresses", ip)
		}
	}
	err := editHosts(func(b []byte) []byte {
		for name, ip := range entries {
			b = fmt.Appendf(b, "%s %s %s\n", ip, name, mark)
		}
		return b
	})
	if err != nil {
		t.Fatalf("cannot edit /etc/hosts (the tests that start peer servers run as root): %v", err)
	}
	t.Cleanup(func() {
		err := editHosts(func(b []byte) []byte {
			var keep []string
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if !strings.Contains(l, mark) {
					keep = append(keep, l)
				}
			}
			return []byte(strings.Join(keep, ""))
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// editHosts rewrites /etc/hosts under an exclusive flock, so that test
// binaries running at the same time (go test runs packages in parallel)
// do not lose each other's lines. It rewrites the file in place:
// /etc/hosts may be a bind mount that a rename would not replace.
func editHosts(edit func([]byte) []byte) error {
	f, err := os.OpenFile(hostsFile, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", hostsFile, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", hostsFile, err)
	}
	b, err := os.ReadFile(hostsFile)
	if err != nil {
		return err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	nb := edit(b)
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", hostsFile, err)
	}
	if _, err := f.WriteAt(nb, 0); err != nil {
		return fmt.Errorf("write %s: %w", hostsFile, err)
	}
	return nil
}
