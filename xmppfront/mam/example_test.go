package mam_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/mam"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

// oneMessage is an archive holding one message of juliet's; the real one
// is *archive.Service.
type oneMessage struct{}

func (oneMessage) Query(context.Context, jid.JID, archive.Query) (archive.Page, error) {
	id := uuid.MustParse("0196873a-a100-7000-8000-000000000001")
	return archive.Page{
		Messages: []archive.Message{{
			ID: id, Partner: "romeo@example.net", Direction: domain.DirectionIn,
			At:     time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC),
			Stanza: []byte(`<message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.org' type='chat'><body>Hail to thee</body></message>`),
		}},
		First: id, Last: id, Complete: true, Count: 1, Max: 50,
	}, nil
}

func (oneMessage) Prefs(context.Context, jid.JID) (domain.ArchivePrefs, error) {
	return domain.NewArchivePrefs(domain.ArchiveNever), nil
}

func (oneMessage) SetPrefs(context.Context, jid.JID, domain.ArchiveMode, []jid.JID, []jid.JID) (domain.ArchivePrefs, error) {
	return domain.ArchivePrefs{}, nil
}

// printer stands in for the router: it prints what goes to the resource.
type printer struct{}

func (printer) SendToResource(_ context.Context, _ jid.JID, st *stream.Element) bool {
	fmt.Println("S:", st)
	return true
}

// A client asks for the last page of its conversation with romeo; the
// results come as messages, then the IQ result carries the <fin/>.
func Example() {
	svc, err := mam.New(mam.Config{Archive: oneMessage{}, Router: printer{}})
	if err != nil {
		panic(err)
	}
	m := router.NewMux()
	svc.Register(m)

	query := stream.NewElement(mam.NS, "query", "queryid", "f27").
		AddChild(stream.NewElement(mam.NSData, "x", "type", "submit").
			AddChild(stream.NewElement(mam.NSData, "field", "var", "FORM_TYPE").
				AddChild(stream.NewElement(mam.NSData, "value").AddText(mam.NS))).
			AddChild(stream.NewElement(mam.NSData, "field", "var", "with").
				AddChild(stream.NewElement(mam.NSData, "value").AddText("romeo@example.net")))).
		AddChild(stream.NewElement(mam.NSRSM, "set").
			AddChild(stream.NewElement(mam.NSRSM, "max").AddText("50")).
			AddChild(stream.NewElement(mam.NSRSM, "before")))
	fmt.Println("C:", query)

	from := jid.MustParse("juliet@example.org/balcony")
	fin, err := m.Lookup(query.Name).HandleIQ(context.Background(), router.IQ{
		From: from, To: from.Bare(), Type: "set", Payload: query,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("S: (IQ result)", fin)
	// Output:
	// C: <query xmlns='urn:xmpp:mam:2' queryid='f27'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>romeo@example.net</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query>
	// S: <message xmlns='jabber:client' to='juliet@example.org/balcony' from='juliet@example.org' id='0196873a-a100-7000-8000-000000000001'><result xmlns='urn:xmpp:mam:2' queryid='f27' id='0196873a-a100-7000-8000-000000000001'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-05-01T10:00:00.000Z'/><message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.org' type='chat'><body>Hail to thee</body></message></forwarded></result></message>
	// S: (IQ result) <fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>0196873a-a100-7000-8000-000000000001</first><last>0196873a-a100-7000-8000-000000000001</last><count>1</count></set></fin>
}
