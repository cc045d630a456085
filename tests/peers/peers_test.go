package peers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestCAIssue(t *testing.T) {
	ca := NewCA(t, t.TempDir())
	other := ca.Another(t, "other")
	certFile, keyFile := ca.Issue(t, "x", "x.test", "alt.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pool *x509.CertPool
		name string
		ok   bool
	}{
		{ca.Pool, "x.test", true},
		{ca.Pool, "alt.test", true},
		{ca.Pool, "other.test", false},
		{other.Pool, "x.test", false},
	} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: c.pool, DNSName: c.name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
		if (err == nil) != c.ok {
			t.Errorf("verify %s with %p: %v, want ok=%v", c.name, c.pool, err, c.ok)
		}
	}
	if b, err := os.ReadFile(ca.File()); err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("%s: %v %q", ca.File(), err, b)
	}
}

// fatalTB records Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestNeedFailsOnAMissingTool(t *testing.T) {
	for _, c := range []struct {
		bin  string
		fail bool
	}{
		{"sh", false},
		{"no-such-tool-verlauf", true},
	} {
		f := &fatalTB{TB: t}
		Need(f, c.bin)
		if (f.fatal != "") != c.fail {
			t.Errorf("Need(%s): %q, want failure=%v", c.bin, f.fatal, c.fail)
		}
	}
}

// The lines AddHosts adds are there during the test and gone after it,
// and the rest of /etc/hosts stays.
func TestAddHosts(t *testing.T) {
	NeedRoot(t)
	before, err := os.ReadFile(hostsFile)
	if err != nil {
		t.Fatal(err)
	}
	const line = "127.0.0.99 peers-selftest.test"
	t.Run("added", func(t *testing.T) {
		AddHosts(t, map[string]string{"peers-selftest.test": "127.0.0.99"})
		b, err := os.ReadFile(hostsFile)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), line) {
			t.Fatalf("/etc/hosts lacks %q:\n%s", line, b)
		}
	})
	after, err := os.ReadFile(hostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(after), line) {
		t.Fatalf("/etc/hosts still has %q:\n%s", line, after)
	}
	// Other test binaries may add and remove their own lines meanwhile;
	// the system's lines stay.
	for _, l := range strings.Split(string(before), "\n") {
		if l != "" && !strings.Contains(l, "# verlauf-peers-test ") && !strings.Contains(string(after), l) {
			t.Errorf("/etc/hosts lost %q", l)
		}
	}
}
