package mam

import (
	"bytes"
	"errors"
	"testing"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// fuzzElement parses b as one element of a jabber:client stream, as the
// c2s reader hands it to the handlers.
func fuzzElement(b []byte) (*stream.Element, bool) {
	const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	r := stream.NewReader(bytes.NewReader(append([]byte(hdr), b...)), stream.Limits{MaxStanzaSize: 16 << 10})
	if _, err := r.ReadHeader(); err != nil {
		return nil, false
	}
	el, err := r.Next()
	return el, err == nil
}

// FuzzParseQuery: the MAM query (data form, RSM <set/>, flip-page) comes
// straight from clients. Parsing never panics, a refusal is always a
// stanza error (which the IQ mux turns into an error reply, never an
// internal-server-error), and what is accepted is consistent.
func FuzzParseQuery(f *testing.F) {
	form := func(fields string) string {
		return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + fields + "</x>"
	}
	for _, s := range []string{
		"<query xmlns='urn:xmpp:mam:2'/>",
		"<query xmlns='urn:xmpp:mam:2' queryid='q'>" + form("<field var='with'><value>bob@example.org</value></field>") + "</query>",
		"<query xmlns='urn:xmpp:mam:2'>" + form("<field var='start'><value>2024-01-01T00:00:00Z</value></field><field var='end'><value>2023-01-01T00:00:00.123+02:00</value></field>") + "</query>",
		"<query xmlns='urn:xmpp:mam:2'>" + form("<field var='ids'><value>0190a3c4-0000-7000-8000-000000000000</value><value/></field>") + "</query>",
		"<query xmlns='urn:xmpp:mam:2'>" + form("<field var='after-id'><value>x</value></field><field var='x'/>") + "</query>",
		"<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/></query>",
		"<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max><after>0190a3c4-0000-7000-8000-000000000000</after><index>3</index></set></query>",
		"<query xmlns='urn:xmpp:mam:2' node='n'><x xmlns='jabber:x:data' type='form'/><x xmlns='jabber:x:data'/></query>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, ok := fuzzElement(b)
		if !ok {
			return
		}
		r, err := parseQuery(el)
		if err != nil {
			var se *stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("parseQuery(%s): %v is not a stanza error", el, err)
			}
			return
		}
		if r.q.Max < 0 {
			t.Fatalf("parseQuery(%s): negative max %d", el, r.q.Max)
		}
		if !r.q.Start.IsZero() && !r.q.End.IsZero() && r.q.End.Before(r.q.Start) {
			t.Fatalf("parseQuery(%s): end %v before start %v accepted", el, r.q.End, r.q.Start)
		}
	})
}

// FuzzPrefsJIDs: the <always/> and <never/> lists of XEP-0313
// preferences. (They may name full JIDs: the preferences match a peer's
// full or bare JID.)
func FuzzPrefsJIDs(f *testing.F) {
	for _, s := range []string{
		"<always xmlns='urn:xmpp:mam:2'><jid>bob@example.org</jid><jid>example.net</jid></always>",
		"<never xmlns='urn:xmpp:mam:2'><jid>bob@example.org/r</jid><jid></jid><jid>@@</jid></never>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, ok := fuzzElement(b)
		if !ok {
			return
		}
		jids, err := bareJIDs(el)
		if err != nil {
			var se *stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("bareJIDs(%s): %v is not a stanza error", el, err)
			}
			return
		}
		for _, j := range jids {
			if j.Domainpart() == "" {
				t.Fatalf("bareJIDs(%s) returned an empty JID", el)
			}
		}
	})
}
