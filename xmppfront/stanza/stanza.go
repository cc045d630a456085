// Package stanza holds what every XMPP feature handler needs to read and
// answer stanzas: the stanza error of RFC 6120 §8.3 and builders for IQ
// results and errors. It knows nothing of sessions or routing.
package stanza

import (
	"fmt"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces used across features.
const (
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// ErrorType is the type attribute of a stanza error (RFC 6120 §8.3.2).
type ErrorType string

// Error types.
const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Condition is a defined stanza error condition (RFC 6120 §8.3.3).
type Condition string

// Conditions.
const (
	BadRequest            Condition = "bad-request"
	Conflict              Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	Gone                  Condition = "gone"
	InternalServerError   Condition = "internal-server-error"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	NotAuthorized         Condition = "not-authorized"
	PolicyViolation       Condition = "policy-violation"
	RecipientUnavailable  Condition = "recipient-unavailable"
	Redirect              Condition = "redirect"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerNotFound  Condition = "remote-server-not-found"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraint    Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	SubscriptionRequired  Condition = "subscription-required"
	UndefinedCondition    Condition = "undefined-condition"
	UnexpectedRequest     Condition = "unexpected-request"
)

// Error is a stanza error. Handlers return it (wrapped or not) and the
// router turns it into the error reply; errors.As finds it.
type Error struct {
	Type      ErrorType
	Condition Condition
	// Text is a human-readable explanation, optional.
	Text string
	// App is an application-specific condition element, optional.
	App *stream.Element
}

func (e *Error) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("stanza error %s/%s: %s", e.Type, e.Condition, e.Text)
	}
	return fmt.Sprintf("stanza error %s/%s", e.Type, e.Condition)
}

// Errorf returns a stanza error with a formatted text.
func Errorf(t ErrorType, c Condition, format string, args ...any) *Error {
	return &Error{Type: t, Condition: c, Text: fmt.Sprintf(format, args...)}
}

// Element renders the <error/> child.
func (e *Error) Element(contentNS string) *stream.Element {
	el := stream.NewElement(contentNS, "error", "type", string(e.Type))
	el.AddChild(stream.NewElement(NSStanzas, string(e.Condition)))
	if e.Text != "" {
		el.AddChild(stream.NewElement(NSStanzas, "text")).AddText(e.Text)
	}
	if e.App != nil {
		el.AddChild(e.App)
	}
	return el
}

// ErrorReply builds the error reply to st per RFC 6120 §8.3.1: same name and
// id, from and to swapped, type error, the original payload kept for IQs
// (optional in the RFC, helpful to clients) and the error appended.
func ErrorReply(st *stream.Element, e *Error) *stream.Element {
	ns := st.Name.Space
	r := stream.NewElement(ns, st.Name.Local, "type", "error")
	if id := st.Attr("id"); id != "" {
		r.SetAttr("id", id)
	}
	if f := st.Attr("from"); f != "" {
		r.SetAttr("to", f)
	}
	if t := st.Attr("to"); t != "" {
		r.SetAttr("from", t)
	}
	if st.Name.Local != "iq" {
		for c := range st.Children() {
			r.AddChild(c.Clone())
		}
	}
	r.AddChild(e.Element(ns))
	return r
}

// Result builds the type='result' reply to the IQ iq, with payload as its
// child if not nil.
func Result(iq *stream.Element, payload *stream.Element) *stream.Element {
	r := stream.NewElement(iq.Name.Space, "iq", "type", "result", "id", iq.Attr("id"))
	if f := iq.Attr("from"); f != "" {
		r.SetAttr("to", f)
	}
	if t := iq.Attr("to"); t != "" {
		r.SetAttr("from", t)
	}
	if payload != nil {
		r.AddChild(payload)
	}
	return r
}

// Payload returns the single child of an IQ get or set, or a bad-request
// error when there is none or more than one (RFC 6120 §8.2.3).
func Payload(iq *stream.Element) (*stream.Element, error) {
	var p *stream.Element
	for c := range iq.Children() {
		if p != nil {
			return nil, &Error{Type: Modify, Condition: BadRequest, Text: "an IQ get or set has exactly one child"}
		}
		p = c
	}
	if p == nil {
		return nil, &Error{Type: Modify, Condition: BadRequest, Text: "an IQ get or set has exactly one child"}
	}
	return p, nil
}
