package sasl

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/tls"
	"errors"
	"testing"

	msasl "mellium.im/sasl"
)

// These tests run mellium.im/sasl's client, which nobody here wrote,
// against this server over real TLS connection states.

var melliumMechs = map[string]msasl.Mechanism{
	ScramSHA1:       msasl.ScramSha1,
	ScramSHA256:     msasl.ScramSha256,
	ScramSHA1Plus:   msasl.ScramSha1Plus,
	ScramSHA256Plus: msasl.ScramSha256Plus,
	Plain:           msasl.Plain,
}

// exchange drives one authentication between a mellium client and s, the
// way a c2s stream would. It fails the test if the client rejects a
// successful server's final message (mutual authentication).
func exchange(t *testing.T, client *msasl.Negotiator, s *Server) error {
	t.Helper()
	ctx := context.Background()
	_, resp, err := client.Step(nil)
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	for range 4 {
		out, done, err := s.Step(ctx, resp)
		if err != nil {
			return err
		}
		if done {
			if s.Mechanism() != Plain {
				if _, _, err := client.Step(out); err != nil {
					t.Fatalf("client rejects server-final %q: %v", out, err)
				}
			}
			return nil
		}
		if _, resp, err = client.Step(out); err != nil {
			t.Fatalf("client step: %v", err)
		}
	}
	t.Fatal("exchange does not end")
	return nil
}

func melliumClient(mech, user, password, authzid string, cs *tls.ConnectionState, offered []string) *msasl.Negotiator {
	opts := []msasl.Option{
		msasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(user), []byte(password), []byte(authzid)
		}),
		msasl.RemoteMechanisms(offered...),
	}
	if cs != nil {
		opts = append(opts, msasl.TLSState(*cs))
	}
	return msasl.NewClient(melliumMechs[mech], opts...)
}

func TestInteropMellium(t *testing.T) {
	u := testUsers(t)
	u.register(t, "juliet,capulet", "r0m3o&", []byte("another salt 123"), 4096)

	cert := ecdsaCert(t, elliptic.P256())
	srvCS, cliCS := tlsPair(t, cert, tls.VersionTLS13)
	_, otherCliCS := tlsPair(t, cert, tls.VersionTLS13)
	srv12, cli12 := tlsPair(t, cert, tls.VersionTLS12)
	bindings := ChannelBindings(srvCS, cert.Leaf)
	offered := Mechanisms(true, bindings)

	type tc struct {
		name       string
		mech       string // server and client mechanism
		clientMech string // if the client runs another one than the server
		user, pw   string
		authzid    string
		clientCS   *tls.ConnectionState
		serverCB   []ChannelBinding
		offered    []string
		cond       Condition // "" for success
		e          string
		wantCB     string
	}
	var tests []tc
	for _, mech := range []string{ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus, Plain} {
		cb := ""
		if mech == ScramSHA1Plus || mech == ScramSHA256Plus {
			cb = TLSExporter
		}
		e := errInvalidProof
		if mech == Plain {
			e = ""
		}
		tests = append(tests,
			tc{name: mech, mech: mech, user: "user", pw: "pencil", clientCS: &cliCS, serverCB: bindings, offered: offered, wantCB: cb},
			tc{name: mech + " escaped user and authzid", mech: mech, user: "juliet,capulet", pw: "r0m3o&", authzid: "juliet@example.net", clientCS: &cliCS, serverCB: bindings, offered: offered, wantCB: cb},
			tc{name: mech + " wrong password", mech: mech, user: "user", pw: "pencil2", clientCS: &cliCS, serverCB: bindings, offered: offered, cond: NotAuthorized, e: e},
			tc{name: mech + " unknown user", mech: mech, user: "nobody", pw: "pencil", clientCS: &cliCS, serverCB: bindings, offered: offered, cond: NotAuthorized, e: e},
		)
	}
	tests = append(tests,
		// The client's exporter comes from another TLS connection: what a
		// man in the middle relaying SCRAM between two sessions produces.
		tc{name: "SCRAM-SHA-256-PLUS binding mismatch", mech: ScramSHA256Plus, user: "user", pw: "pencil", clientCS: &otherCliCS, serverCB: bindings, offered: offered, cond: NotAuthorized, e: errChannelBindingsDontMatch},
		tc{name: "SCRAM-SHA-1-PLUS binding mismatch", mech: ScramSHA1Plus, user: "user", pw: "pencil", clientCS: &otherCliCS, serverCB: bindings, offered: offered, cond: NotAuthorized, e: errChannelBindingsDontMatch},
		// On TLS 1.2 mellium binds to tls-unique, which this server refuses.
		tc{name: "TLS 1.2 tls-unique", mech: ScramSHA256Plus, user: "user", pw: "pencil", clientCS: &cli12, serverCB: ChannelBindings(srv12, cert.Leaf), offered: offered, cond: NotAuthorized, e: errUnsupportedCBType},
		// The client could bind but did not see -PLUS in the offer, so it
		// says "y" on SCRAM-SHA-256: the server did offer it, so refuse.
		tc{name: "downgrade y", mech: ScramSHA256, clientMech: ScramSHA256Plus, user: "user", pw: "pencil", clientCS: &cliCS, serverCB: bindings, offered: Mechanisms(true, nil), cond: NotAuthorized, e: errServerDoesSupportCB},
		// Without channel-binding support "y" is fine.
		tc{name: "y without server support", mech: ScramSHA256, clientMech: ScramSHA256Plus, user: "user", pw: "pencil", clientCS: &cliCS, offered: Mechanisms(true, nil)},
		// A client that does not bind at all ("n") is not a downgrade.
		tc{name: "plain SCRAM next to -PLUS", mech: ScramSHA256, user: "user", pw: "pencil", clientCS: &cliCS, serverCB: bindings, offered: offered},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Lookup: u.lookup, MockSecret: testSecret, ChannelBindings: tt.serverCB, TLS: true}
			s := newTestServer(t, tt.mech, cfg, "")
			cm := tt.clientMech
			if cm == "" {
				cm = tt.mech
			}
			err := exchange(t, melliumClient(cm, tt.user, tt.pw, tt.authzid, tt.clientCS, tt.offered), s)
			if tt.cond != "" {
				wantFailure(t, err, tt.cond, tt.e)
				if tt.user == "nobody" && !errors.Is(err, ErrUnknownUser) {
					t.Fatalf("cause %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := s.Result()
			h := SHA256
			if tt.mech == ScramSHA1 || tt.mech == ScramSHA1Plus {
				h = SHA1
			}
			if r.Username != tt.user || r.Authzid != tt.authzid || r.Hash != h || r.ChannelBinding != tt.wantCB {
				t.Fatalf("result = %+v", r)
			}
			// The ClientKey the server recovered is the one derived from
			// the password at registration.
			if !bytes.Equal(r.ClientKey, u[tt.user].clientKey[h]) {
				t.Fatalf("ClientKey %x, want %x", r.ClientKey, u[tt.user].clientKey[h])
			}
		})
	}
}
