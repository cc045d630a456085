package peers

import (
	"net"
	"strconv"
	"testing"
)

// Peer holds what Prosody and ejabberd are both told, and tells their
// clients where they are. Domain and IP are required.
type Peer struct {
	Domain string
	// IP is the loopback address it listens on, alone.
	IP string
	// Dir holds its configuration, log and data, and whatever the test
	// puts there for it before it starts (it owns all of Dir); a new
	// t.TempDir() when "".
	Dir string
	// C2SPort is 5222 and S2SPort 5269 when 0.
	C2SPort, S2SPort int
	// Federate opens the server-to-server port, with TLS required;
	// without it the server does not federate.
	Federate bool
	// CA issues its certificate, and TLS is required of its clients;
	// without one, clients log in over plain TCP.
	CA *CA
	// Trust is the CA file it verifies peers with; CA's when "".
	Trust string
	// Dialback lets it fall back to dialback with peers whose
	// certificate it cannot verify.
	Dialback bool
	// Users maps local parts to passwords.
	Users map[string]string
	// Modules are loaded besides the server's basic ones.
	Modules []string
}

func (p *Peer) defaults(t testing.TB, server string) {
	t.Helper()
	if p.Domain == "" || p.IP == "" {
		t.Fatalf("peers: %s needs a domain and an IP", server)
	}
	if p.Dir == "" {
		p.Dir = t.TempDir()
	}
	if p.C2SPort == 0 {
		p.C2SPort = 5222
	}
	if p.S2SPort == 0 {
		p.S2SPort = 5269
	}
	if p.Trust == "" && p.CA != nil {
		p.Trust = p.CA.File()
	}
}

// C2S is the host:port of its client port.
func (p *Peer) C2S() string { return net.JoinHostPort(p.IP, strconv.Itoa(p.C2SPort)) }

// S2S is the host:port of its server port.
func (p *Peer) S2S() string { return net.JoinHostPort(p.IP, strconv.Itoa(p.S2SPort)) }

// CAFile is the certificate of the CA that issued its certificate, for
// its clients; "" without TLS.
func (p *Peer) CAFile() string {
	if p.CA == nil {
		return ""
	}
	return p.CA.File()
}
