package archiving

import (
	"strings"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of the elements the no-store rules look at.
const (
	NSHints    = "urn:xmpp:hints"                        // XEP-0334
	NSEME      = "urn:xmpp:eme:0"                        // XEP-0380
	NSOTR      = "urn:xmpp:otr:0"                        // OTR's name in XEP-0380
	NSCarbons  = "urn:xmpp:carbons:2"                    // XEP-0280
	NSOMEMO    = "eu.siacs.conversations.axolotl"        // XEP-0384 up to 0.3
	NSOMEMO2   = "urn:xmpp:omemo:2"                      // XEP-0384 0.8 on
	NSChatStat = "http://jabber.org/protocol/chatstates" // XEP-0085
)

// otrTagBase opens an OTR whitespace tag; one or more 8-character version
// tags of spaces and tabs follow it (OTR protocol v3, "Tagged plaintext
// messages").
const otrTagBase = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20"

// Class is what the no-store rules make of a message.
type Class struct {
	// OTR: a body starting with ?OTR (query, data, error), an OTR
	// whitespace tag, or an XEP-0380 <encryption> naming OTR.
	OTR bool
	// NoStore: OTR, or an XEP-0334 <no-store/> or <no-permanent-store/>.
	// Such a message is routed to online resources only: never archived,
	// never queued offline.
	NoStore bool
	// NoCopy: XEP-0334 <no-copy/> or carbons' <private/>: no carbons.
	NoCopy bool
	// Store: an XEP-0334 <store/> hint, which asks for offline storage of
	// a message without a body.
	Store bool
	// Body: a <body> with more than white space.
	Body bool
	// OMEMO: an XEP-0384 encrypted payload (either namespace); archived
	// as it is, being end-to-end encrypted already.
	OMEMO bool
	// ChatState: an XEP-0085 chat state notification.
	ChatState bool
}

// Content reports whether the message says something a person reads: a
// body or an OMEMO payload. A message without content (chat states,
// receipts, markers alone) is neither archived nor queued.
func (c Class) Content() bool { return c.Body || c.OMEMO }

// Classify applies the no-store rules to a message stanza. It reads only
// the stanza's own children and never keeps or logs the body.
func Classify(st *stream.Element) Class {
	var c Class
	for ch := range st.Children() {
		switch ch.Name.Space {
		case st.Name.Space:
			if ch.Name.Local == "body" {
				body := ch.Text()
				if otrBody(body) {
					c.OTR = true
				}
				if strings.TrimSpace(body) != "" {
					c.Body = true
				}
			}
		case NSHints:
			switch ch.Name.Local {
			case "no-store", "no-permanent-store":
				c.NoStore = true
			case "no-copy":
				c.NoCopy = true
			case "store":
				c.Store = true
			}
		case NSEME:
			if ch.Name.Local == "encryption" && ch.Attr("namespace") == NSOTR {
				c.OTR = true
			}
		case NSCarbons:
			if ch.Name.Local == "private" {
				c.NoCopy = true
			}
		case NSOMEMO, NSOMEMO2:
			// A key transport element has no payload: nothing to read.
			if ch.Name.Local == "encrypted" && ch.Child("payload", "") != nil {
				c.OMEMO = true
			}
		case NSChatStat:
			c.ChatState = true
		}
	}
	if c.OTR {
		c.NoStore = true
	}
	return c
}

// otrBody reports whether a body is OTR's: it starts with "?OTR" (a
// query "?OTR?" or "?OTRv23?", data "?OTR:", an error "?OTR Error:"), or
// carries a whitespace tag anywhere (a client appends the tag to plain
// text to offer OTR).
func otrBody(b string) bool {
	if strings.HasPrefix(strings.TrimLeft(b, " \t\r\n"), "?OTR") {
		return true
	}
	for rest := b; ; {
		i := strings.Index(rest, otrTagBase)
		if i < 0 {
			return false
		}
		rest = rest[i+len(otrTagBase):]
		if len(rest) >= 8 && strings.Trim(rest[:8], " \t") == "" {
			return true
		}
	}
}

// Archivable reports whether st is a message the archive keeps when its
// parties' preferences say so: type chat or normal, with content, and not
// no-store. Groupchat, headline and error messages are never archived here.
func Archivable(st *stream.Element) bool {
	if st.Name.Local != "message" {
		return false
	}
	switch st.Attr("type") {
	case "", "normal", "chat":
	default:
		return false
	}
	c := Classify(st)
	return c.Content() && !c.NoStore
}
