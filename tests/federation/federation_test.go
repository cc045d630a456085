package federation

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"

	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

// verlaufOptions shape a verlauf node for verlauf.test on verlaufIP:5269.
type verlaufOptions struct {
	// routes map peer domains to host:port.
	routes map[string]string
	// requireVerified turns dialback off: only peers whose certificate
	// verifies for their domain are accepted.
	requireVerified bool
	// extra is appended to the config.
	extra string
	// users are the local parts of its users, whose password is
	// <user>-password; alice and carol when nil.
	users []string
}

// verlaufNode starts verlauf as verlauf.test on verlaufIP:5269 with a
// certificate from the test CA, routes to the given peers, and alice.
func verlaufNode(t *testing.T, p *peers.CA, routes map[string]string) (*testserver.Server, *xmppclient.Client) {
	t.Helper()
	s := startVerlauf(t, p, verlaufOptions{routes: routes})
	return s, login(t, s, p, "alice")
}

// startVerlauf starts verlauf.test with a certificate from p, whose CA is
// also the one it trusts for peers, and its users.
func startVerlauf(t testing.TB, p *peers.CA, o verlaufOptions) *testserver.Server {
	t.Helper()
	cert, key := p.Issue(t, "verlauf.test", "verlauf.test")
	var rs strings.Builder
	for d, a := range o.routes {
		fmt.Fprintf(&rs, "%q = %q\n", d, a)
	}
	s := testserver.Start(t, testserver.Options{Domain: "verlauf.test", Extra: fmt.Sprintf(`
[tls]
cert_file = %q
key_file = %q

[s2s]
listen = %q
ca_file = %q
require_verified_certificates = %t

[s2s.routes]
%s
%s
`, cert, key, net.JoinHostPort(verlaufIP, "5269"), p.File(), o.requireVerified, rs.String(), o.extra)})
	if o.users == nil {
		o.users = []string{"alice", "carol"}
	}
	for _, u := range o.users {
		if out, err := s.Verlauf(u+"-password\n", "user", "add", u); err != nil {
			t.Fatalf("user add %s: %v: %s", u, err, out)
		}
	}
	return s
}

// login logs user (alice or carol) in to verlauf.test with a resource
// the server picks, fetches the roster and sends presence.
func login(t testing.TB, s *testserver.Server, p *peers.CA, user string) *xmppclient.Client {
	t.Helper()
	c := xmppclient.MustDial(t, xmppclient.Options{
		Addr: s.C2S, User: user + "@verlauf.test", Password: user + "-password",
		TLS: &tls.Config{ServerName: "verlauf.test", RootCAs: p.Pool, MinVersion: tls.VersionTLS12},
	})
	c.Send(t, `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	c.ExpectID(t, "r1")
	c.Send(t, `<presence/>`)
	return c
}

// startProsody runs Prosody for prosody.test on prosodyIP with a
// certificate from p, the CA it trusts too; bob is its user.
func startProsody(t testing.TB, p *peers.CA) *peers.Prosody {
	t.Helper()
	return runProsody(t, peers.ProsodyOptions{Peer: peers.Peer{Domain: "prosody.test", IP: prosodyIP, CA: p}})
}

// runProsody runs a federating Prosody shaped by o; bob is its user when
// o names none, and it logs at debug level unless told otherwise.
func runProsody(t testing.TB, o peers.ProsodyOptions) *peers.Prosody {
	t.Helper()
	o.Federate = true
	if o.Users == nil {
		o.Users = map[string]string{"bob": "bob-password"}
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	return peers.StartProsody(t, o)
}

// userOn starts peer.py as one of the peer server's users.
func userOn(t *testing.T, n *peers.Peer, name string) *peerUser {
	t.Helper()
	return startPeerUser(t, name+"@"+n.Domain, n.Users[name], n.IP, n.C2SPort, n.CAFile())
}

// exchange proves a verlauf user and a peer user can be contacts: the
// subscription handshake, presence both ways, messages both ways, IQ
// pings to the servers and to a full JID across.
func exchange(t *testing.T, alice *xmppclient.Client, bob *peerUser, peerDomain string) {
	bobJID := bob.jid
	aliceFull := alice.JID.String()
	isFrom := func(bare string) func(*stream.Element) bool {
		return func(e *stream.Element) bool { return strings.HasPrefix(e.Attr("from"), bare) }
	}
	t.Run("subscription and presence", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bobJID))
		bob.expect("presence", func(ev map[string]any) bool { return ev["type"] == "subscribe" })
		// bob approves and asks back, and his presence follows his
		// approval; the peer may send these in any order.
		expectAll(t, alice, map[string]func(*stream.Element) bool{
			"subscribed from bob": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "subscribed" && isFrom(bobJID)(e)
			},
			"bob's subscription request": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "subscribe" && isFrom(bobJID)(e)
			},
			"bob's presence": func(e *stream.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "" && isFrom(bobJID+"/")(e)
			},
		})
		alice.Send(t, fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, bobJID))
		bob.expect("presence", func(ev map[string]any) bool { return ev["type"] == "subscribed" })
		// Now that bob is a subscriber, he sees alice come and go.
		alice.Send(t, `<presence><status>here</status></presence>`)
		bob.expect("presence", func(ev map[string]any) bool {
			return ev["type"] == "available" && ev["frm"] == aliceFull
		})
	})
	t.Run("messages", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='m1'><body>hello from verlauf</body></message>`, bobJID))
		bob.expect("message", func(ev map[string]any) bool {
			return ev["body"] == "hello from verlauf" && ev["frm"] == aliceFull
		})
		bob.do(map[string]any{"cmd": "message", "to": "alice@verlauf.test", "body": "hello from " + peerDomain})
		alice.Expect(t, "bob's message", func(e *stream.Element) bool {
			b := e.Child("body", "")
			return e.Name.Local == "message" && b != nil && b.Text() == "hello from "+peerDomain && isFrom(bobJID)(e)
		})
	})
	t.Run("ping", func(t *testing.T) {
		bob := bob.in(t)
		alice.Send(t, fmt.Sprintf(`<iq type='get' id='ping1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, peerDomain))
		if r := alice.ExpectID(t, "ping1"); r.Attr("type") != "result" {
			t.Fatalf("ping of %s: %s", peerDomain, r)
		}
		bob.do(map[string]any{"cmd": "ping", "to": "verlauf.test", "id": "server"})
		if ev := bob.expect("pong", func(ev map[string]any) bool { return ev["id"] == "server" }); ev["ok"] != true {
			t.Fatalf("%s pinging verlauf.test: %v", bobJID, ev)
		}
		// To alice's full JID: her client answers.
		bob.do(map[string]any{"cmd": "ping", "to": aliceFull, "id": "alice"})
		iq := alice.Expect(t, "bob's ping", func(e *stream.Element) bool {
			return e.Name.Local == "iq" && e.Attr("type") == "get" && isFrom(bobJID)(e)
		})
		alice.Send(t, fmt.Sprintf(`<iq type='result' id='%s' to='%s'/>`, iq.Attr("id"), iq.Attr("from")))
		if ev := bob.expect("pong", func(ev map[string]any) bool { return ev["id"] == "alice" }); ev["ok"] != true {
			t.Fatalf("%s pinging alice: %v", bobJID, ev)
		}
	})
}

// expectAll waits until each named match has been seen, in any order.
func expectAll(t *testing.T, c *xmppclient.Client, want map[string]func(*stream.Element) bool) {
	t.Helper()
	for len(want) > 0 {
		var names []string
		for n := range want {
			names = append(names, n)
		}
		el := c.Expect(t, strings.Join(names, ", "), func(e *stream.Element) bool {
			for _, m := range want {
				if m(e) {
					return true
				}
			}
			return false
		})
		for n, m := range want {
			if m(el) {
				delete(want, n)
			}
		}
	}
}

func TestProsody(t *testing.T) {
	p := setUp(t, "prosody.test", prosodyIP)
	pn := startProsody(t, p)
	s, alice := verlaufNode(t, p, map[string]string{"prosody.test": pn.S2S()})
	bob := userOn(t, &pn.Peer, "bob")
	exchange(t, alice, bob, "prosody.test")
	expectMethod(t, s, "prosody.test", "EXTERNAL")
}

// startEjabberd runs ejabberd for ejabberd.test on ejabberdIP with a
// certificate from p, the CA it trusts too; bob is its user.
func startEjabberd(t *testing.T, p *peers.CA) *peers.Ejabberd {
	t.Helper()
	return runEjabberd(t, peers.Peer{CA: p})
}

// runEjabberd runs ejabberd for ejabberd.test on ejabberdIP, federating,
// shaped by p; bob is its user.
func runEjabberd(t *testing.T, p peers.Peer) *peers.Ejabberd {
	t.Helper()
	p.Domain, p.IP, p.Federate = "ejabberd.test", ejabberdIP, true
	p.Modules = []string{"mod_disco", "mod_ping"}
	p.Users = map[string]string{"bob": "bob-password"}
	// Its own Erlang node and port: tests/interop may run one too.
	return peers.StartEjabberd(t, peers.EjabberdOptions{Peer: p, Node: "verlauffed", DistPort: 25399})
}

func TestEjabberd(t *testing.T) {
	p := setUp(t, "ejabberd.test", ejabberdIP)
	en := startEjabberd(t, p)
	s, alice := verlaufNode(t, p, map[string]string{"ejabberd.test": en.S2S()})
	bob := userOn(t, &en.Peer, "bob")
	exchange(t, alice, bob, "ejabberd.test")
	expectMethod(t, s, "ejabberd.test", "EXTERNAL")
}
