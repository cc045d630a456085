package archiving

import (
	"testing"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

const tag = otrTagBase + "  \t\t  \t\t" // base tag and the v3 tag

func msg(t *testing.T, typ, inner string) *stream.Element {
	t.Helper()
	raw := "<message xmlns='jabber:client' to='bob@example.test'"
	if typ != "" {
		raw += " type='" + typ + "'"
	}
	st, err := router.DecodeStanza([]byte(raw+">"+inner+"</message>"), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		typ, inner string
		want       Class
		archivable bool
	}{
		{"plain chat", "chat", "<body>hello</body>", Class{Body: true}, true},
		{"normal without type", "", "<body>hello</body>", Class{Body: true}, true},
		{"OTR query", "chat", "<body>?OTR?</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"OTR v2/3 query", "chat", "<body>?OTRv23?</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"OTR data", "chat", "<body>?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"OTR error", "chat", "<body>?OTR Error: You sent encrypted data which was unexpected</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"OTR data after a newline", "chat", "<body>\n?OTR:AAM</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"whitespace tag after plain text", "chat", "<body>Want to talk privately?" + tag + "</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"whitespace tag alone", "chat", "<body>" + tag + "</body>", Class{OTR: true, NoStore: true}, false},
		{"base tag without a version tag is plain text", "chat", "<body>x" + otrTagBase + "y</body>", Class{Body: true}, true},
		{"OTR in the middle of a sentence is plain text", "chat", "<body>what is ?OTR anyway</body>", Class{Body: true}, true},
		{"second body in another language", "chat", "<body>hi</body><body xml:lang='de'>?OTR:AAM</body>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"EME naming OTR", "chat", "<body>[encrypted]</body><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>", Class{OTR: true, NoStore: true, Body: true}, false},
		{"EME naming OMEMO is archived", "chat", "<body>[encrypted]</body><encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/>", Class{Body: true}, true},
		{"no-store hint", "chat", "<body>x</body><no-store xmlns='urn:xmpp:hints'/>", Class{NoStore: true, Body: true}, false},
		{"no-permanent-store hint", "chat", "<body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/>", Class{NoStore: true, Body: true}, false},
		{"no-copy hint", "chat", "<body>x</body><no-copy xmlns='urn:xmpp:hints'/>", Class{NoCopy: true, Body: true}, true},
		{"carbons private", "chat", "<body>x</body><private xmlns='urn:xmpp:carbons:2'/>", Class{NoCopy: true, Body: true}, true},
		{"store hint", "chat", "<store xmlns='urn:xmpp:hints'/>", Class{Store: true}, false},
		{"hint in the wrong namespace is ignored", "chat", "<body>x</body><no-store xmlns='urn:example'/>", Class{Body: true}, true},
		{"OMEMO legacy payload, no body", "chat", "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/><payload>AAA=</payload></encrypted>", Class{OMEMO: true}, true},
		{"OMEMO 2 payload", "chat", "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>AAA=</payload></encrypted>", Class{OMEMO: true}, true},
		{"OMEMO key transport has no content", "chat", "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted>", Class{}, false},
		{"chat state only", "chat", "<composing xmlns='http://jabber.org/protocol/chatstates'/>", Class{ChatState: true}, false},
		{"empty body and a chat state", "chat", "<body>  </body><active xmlns='http://jabber.org/protocol/chatstates'/>", Class{ChatState: true}, false},
		{"groupchat is not archived here", "groupchat", "<body>x</body>", Class{Body: true}, false},
		{"headline is not archived", "headline", "<body>x</body>", Class{Body: true}, false},
		{"error is not archived", "error", "<body>x</body>", Class{Body: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := msg(t, tt.typ, tt.inner)
			if got := Classify(st); got != tt.want {
				t.Errorf("Classify = %+v, want %+v", got, tt.want)
			}
			if got := Archivable(st); got != tt.archivable {
				t.Errorf("Archivable = %v, want %v", got, tt.archivable)
			}
		})
	}
}
