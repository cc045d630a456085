package xmppclient

import (
	"testing"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of the history tests.
const (
	NSClient  = "jabber:client"
	NSMAM     = "urn:xmpp:mam:2"
	NSCarbons = "urn:xmpp:carbons:2"
	NSForward = "urn:xmpp:forward:0"
	NSSID     = "urn:xmpp:sid:0"
	NSDelay   = "urn:xmpp:delay"
)

// HistoryOn turns on the account's history: XEP-0313 preferences with
// default='always', which verlauf needs before it archives anything.
func (c *Client) HistoryOn(t testing.TB) {
	t.Helper()
	c.Send(t, "<iq type='set' id='prefs'><prefs xmlns='"+NSMAM+"' default='always'><always/><never/></prefs></iq>")
	if r := c.ExpectID(t, "prefs"); r.Attr("type") != "result" {
		t.Fatalf("prefs: %s", r)
	}
}

// MAMQuery queries the archive with the data form and RSM set given as
// raw XML (either may be "") and returns the bodies of the results in
// order and the <fin/>. Every result must carry its delay.
func (c *Client) MAMQuery(t testing.TB, qid, form, rsm string) ([]string, *stream.Element) {
	t.Helper()
	c.Send(t, "<iq type='set' id='"+qid+"'><query xmlns='"+NSMAM+"' queryid='"+qid+"'>"+form+rsm+"</query></iq>")
	var bodies []string
	for {
		el := c.Expect(t, "MAM result or fin", func(e *stream.Element) bool {
			if e.Attr("id") == qid {
				return true
			}
			r := e.Child("result", NSMAM)
			return e.Name.Local == "message" && r != nil && r.Attr("queryid") == qid
		})
		if el.Name.Local == "iq" {
			if el.Attr("type") != "result" {
				t.Fatalf("MAM query %s: %s", qid, el)
			}
			return bodies, el.Child("fin", NSMAM)
		}
		fwd := el.Child("result", NSMAM).Child("forwarded", NSForward)
		if fwd.Child("delay", NSDelay) == nil {
			t.Fatalf("MAM result without delay: %s", el)
		}
		bodies = append(bodies, fwd.Child("message", NSClient).Child("body", NSClient).Text())
	}
}
