package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
)

// mamServer is a verlauf that archives every conversation and lets the
// test register as many accounts as it needs.
func mamServer(t *testing.T) (*testserver.Server, Config) {
	t.Helper()
	s := testserver.Start(t, testserver.Options{Extra: `
[archive]
default = "always"

[accounts]
registration = true
registration_limit = 0
scram_iterations = 4096
`})
	return s, Config{
		Addr: s.C2S, Domain: s.Domain, Password: "mam-password", Mech: "SCRAM-SHA-256",
		Register: true, TLS: s.TLSConfig(), Window: 8, Drain: 2 * time.Second, LoginConcurrency: 4,
	}
}

// The whole MAM run against the real server: the fill is delivered and
// archived in full, and every query kind returns full pages.
func TestRunMAM(t *testing.T) {
	_, cfg := mamServer(t)
	cfg.Prefix = "mam"
	const fill = 500
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunMAM(ctx, cfg, MAMConfig{Fill: fill, Partners: 2, Queries: 3})
	if err != nil {
		t.Fatalf("RunMAM: %v\n%s", err, rep)
	}
	if rep.Sent != fill || rep.Delivered != fill || rep.Lost != 0 || rep.Dups != 0 || rep.Errors != 0 {
		t.Fatalf("fill: sent %d delivered %d lost %d dups %d errors %d, want %d delivered and nothing else\n%s",
			rep.Sent, rep.Delivered, rep.Lost, rep.Dups, rep.Errors, fill, rep)
	}
	if rep.ArchiveBefore != 0 || rep.ArchiveAfter != fill || rep.Missing != 0 {
		t.Fatalf("archive %d before, %d after, %d missing; want 0, %d, 0\n%s", rep.ArchiveBefore, rep.ArchiveAfter, rep.Missing, fill, rep)
	}
	if len(rep.Queries) != 3 {
		t.Fatalf("%d query kinds, want 3\n%s", len(rep.Queries), rep)
	}
	for i, kind := range []string{KindNewest, KindMiddle, KindWith} {
		q := rep.Queries[i]
		// With 2 partners each conversation holds 250 messages, and the
		// middle of 500 has 250 before it: every page is full.
		if q.Kind != kind || q.Queries != 3 || q.Errors != 0 || q.MinResults != MAMPageSize || q.MaxResults != MAMPageSize || q.P50 <= 0 {
			t.Errorf("%s: %+v, want 3 queries of %d results each", kind, q, MAMPageSize)
		}
		if !strings.Contains(rep.String(), "mam "+kind) {
			t.Errorf("the report has no line for %s:\n%s", kind, rep)
		}
	}
	if rep.QueryNote != "" {
		t.Errorf("query note %q", rep.QueryNote)
	}

	// A second run that only queries finds the same archive.
	again, err := RunMAM(ctx, cfg, MAMConfig{Partners: 2, Queries: 1})
	if err != nil || again.ArchiveAfter != fill || again.Queries[0].MinResults != MAMPageSize {
		t.Fatalf("query-only run: %v\n%s", err, again)
	}
}

// The archive check catches messages that were delivered but not
// archived: the owner has told the server never to archive one partner,
// so that conversation is delivered in full and missing from the count.
func TestRunMAMCatchesMissingMessages(t *testing.T) {
	_, cfg := mamServer(t)
	cfg.Prefix = "gap"
	cfg.Users = 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := registerAll(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := dial(ctx, cfg.Addr, cfg.TLS, cfg.Domain)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.login("gap0", cfg.Password, cfg.Mech, "prefs", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.send(fmt.Sprintf(`<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>gap2@%s</jid></never></prefs></iq>`, cfg.Domain)); err != nil {
		t.Fatal(err)
	}
	for {
		name, e, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if name == "iq" && e.attr("id") == "prefs" {
			if e.attr("type") != "result" {
				t.Fatalf("prefs refused: %s", e.Inner)
			}
			break
		}
	}
	c.close()

	const fill = 40 // 10 each way with each partner
	cfg.Register = false
	rep, err := RunMAM(ctx, cfg, MAMConfig{Fill: fill, Partners: 2})
	if !errors.Is(err, ErrArchiveIncomplete) {
		t.Fatalf("RunMAM = %v, want ErrArchiveIncomplete\n%s", err, rep)
	}
	if rep.Delivered != fill || rep.Missing != fill/2 {
		t.Fatalf("delivered %d, missing %d; want %d and %d\n%s", rep.Delivered, rep.Missing, fill, fill/2, rep)
	}
	if !strings.Contains(rep.String(), fmt.Sprintf("missing %d", fill/2)) {
		t.Fatalf("the report does not show the missing messages:\n%s", rep)
	}
}

func TestParseMAMResult(t *testing.T) {
	tests := []struct {
		name, inner, id, stamp string
		ok                     bool
	}{
		{
			name:  "result",
			inner: `<result xmlns='urn:xmpp:mam:2' queryid='q1' id='abc'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-29T03:44:09.123Z'/><message xmlns='jabber:client'><body>load 1 2</body><delay xmlns='urn:xmpp:delay' stamp='1999-01-01T00:00:00Z'/></message></forwarded></result>`,
			id:    "abc", stamp: "2026-11-29T03:44:09.123Z", ok: true,
		},
		{name: "live message", inner: `<body>load 1 2</body><stanza-id xmlns='urn:xmpp:sid:0' id='x'/>`},
		{name: "other mam element", inner: `<body>load 1 2</body><archived xmlns='urn:xmpp:mam:2' by='a'/>`},
		{name: "result of another namespace", inner: `<result xmlns='urn:xmpp:mam:1' queryid='q1' id='abc'/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := parseMAMResult(tt.inner)
			if ok != tt.ok || r.ID != tt.id || r.Forwarded.Delay.Stamp != tt.stamp {
				t.Fatalf("parseMAMResult = %+v, %v; want id %q stamp %q, %v", r, ok, tt.id, tt.stamp, tt.ok)
			}
			if ok && r.QueryID != "q1" {
				t.Fatalf("queryid %q", r.QueryID)
			}
		})
	}
}

func TestMAMFilterForm(t *testing.T) {
	at := time.Date(2026, 11, 29, 3, 44, 9, 123456789, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		f    mamFilter
		want []string
	}{
		{"none", mamFilter{}, nil},
		{"with", mamFilter{with: "a&b@localhost"}, []string{"FORM_TYPE", "urn:xmpp:mam:2", "<field var='with'><value>a&amp;b@localhost</value>"}},
		{"start", mamFilter{start: at}, []string{"<field var='start'><value>2026-11-29T02:44:09.123Z</value>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.f.form()
			if (got == "") != (tt.want == nil) {
				t.Fatalf("form = %q", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Fatalf("form %q lacks %q", got, w)
				}
			}
		})
	}
}
