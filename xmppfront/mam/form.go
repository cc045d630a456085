package mam

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// field is one field of a submitted data form (XEP-0004).
type field struct {
	values []string
}

// single returns the field's one value; an empty value counts as none,
// since clients send empty fields for filters the user left blank.
func (f field) single(name string) (string, error) {
	switch len(f.values) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(f.values[0]), nil
	default:
		return "", badRequest("field %q takes one value", name)
	}
}

// parseSubmit reads a submitted data form whose FORM_TYPE must be
// formType. It returns the fields by var, FORM_TYPE left out.
func parseSubmit(x *stream.Element, formType string) (map[string]field, error) {
	if t := x.Attr("type"); t != "submit" {
		return nil, badRequest("a query form is submitted with type='submit', not %q", t)
	}
	fields := map[string]field{}
	for c := range x.Children() {
		if c.Name.Space != NSData || c.Name.Local != "field" {
			continue // <title/>, <instructions/> or foreign elements
		}
		name := c.Attr("var")
		if c.Attr("type") == "fixed" {
			continue // a label, never data
		}
		if name == "" {
			return nil, badRequest("a form field has no var")
		}
		if _, dup := fields[name]; dup {
			return nil, badRequest("field %q appears twice", name)
		}
		var f field
		for v := range c.Children() {
			if v.Name.Space == NSData && v.Name.Local == "value" {
				f.values = append(f.values, v.Text())
			}
		}
		fields[name] = f
	}
	ft, ok := fields["FORM_TYPE"]
	if !ok {
		return nil, badRequest("the form has no FORM_TYPE")
	}
	if v, err := ft.single("FORM_TYPE"); err != nil || v != formType {
		return nil, badRequest("FORM_TYPE must be %s", formType)
	}
	delete(fields, "FORM_TYPE")
	return fields, nil
}

// request is a parsed query: the archive query plus what only the protocol
// layer needs.
type request struct {
	q archive.Query
	// countOnly is RSM <max>0</max>: no items, just the count.
	countOnly bool
	// idFilter says the form's after-id or before-id narrowed the result
	// set. The archive counts the range of start, end and with only, so
	// the count would be wrong and is left out (it is optional in MAM).
	idFilter bool
}

// parseQuery reads a MAM query set: the form's filters, the RSM <set/>
// and <flip-page/>.
func parseQuery(query *stream.Element) (request, error) {
	var r request
	if query.Attr("node") != "" {
		return r, stanza.Errorf(stanza.Cancel, stanza.FeatureNotImplemented, "this archive has no nodes")
	}
	var form, set *stream.Element
	for c := range query.Children() {
		switch {
		case c.Name.Space == NSData && c.Name.Local == "x":
			if form != nil {
				return r, badRequest("more than one form")
			}
			form = c
		case c.Name.Space == NSRSM && c.Name.Local == "set":
			if set != nil {
				return r, badRequest("more than one <set/>")
			}
			set = c
		case c.Name.Space == NS && c.Name.Local == "flip-page":
			r.q.FlipPage = true
		case c.Name.Space == NS:
			return r, badRequest("unknown element <%s/> in a query", c.Name.Local)
		}
	}
	if form != nil {
		if err := parseFilters(form, &r.q); err != nil {
			return r, err
		}
		r.idFilter = r.q.AfterID != uuid.Nil || r.q.BeforeID != uuid.Nil
	}
	if set != nil {
		if err := parseRSM(set, &r); err != nil {
			return r, err
		}
	}
	if !r.q.Start.IsZero() && !r.q.End.IsZero() && r.q.End.Before(r.q.Start) {
		return r, badRequest("end is before start")
	}
	return r, nil
}

// parseFilters reads the urn:xmpp:mam:2 form into q. XEP-0313
// ("Retrieving form fields") asks feature-not-implemented for a field the
// server does not know.
func parseFilters(x *stream.Element, q *archive.Query) error {
	fields, err := parseSubmit(x, NS)
	if err != nil {
		return err
	}
	for name, f := range fields {
		if name == "ids" {
			for _, v := range f.values {
				if v = strings.TrimSpace(v); v == "" {
					continue
				}
				id, err := parseID(v)
				if err != nil {
					return err
				}
				q.IDs = append(q.IDs, id)
			}
			continue
		}
		v, err := f.single(name)
		if err != nil {
			return err
		}
		switch name {
		case "with":
			if v == "" {
				continue
			}
			j, err := domain.ParseJID(v)
			if err != nil {
				return stanza.Errorf(stanza.Modify, stanza.JIDMalformed, "with: %q is not a JID", v)
			}
			q.With = j
		case "start", "end":
			if v == "" {
				continue
			}
			t, err := parseDateTime(v)
			if err != nil {
				return badRequest("%s: %q is not an XEP-0082 DateTime", name, v)
			}
			if name == "start" {
				q.Start = t
			} else {
				q.End = t
			}
		case "after-id", "before-id":
			if v == "" {
				continue
			}
			id, err := parseID(v)
			if err != nil {
				return err
			}
			if name == "after-id" {
				q.AfterID = id
			} else {
				q.BeforeID = id
			}
		default:
			return stanza.Errorf(stanza.Cancel, stanza.FeatureNotImplemented, "unknown query field %q", name)
		}
	}
	return nil
}

// parseRSM reads the XEP-0059 <set/> of a query. <after/> and <before/>
// are exclusive bounds like the form's after-id and before-id; when both
// bound one side the tighter wins. <before/> (empty or not) pages from the
// end of the range.
func parseRSM(set *stream.Element, r *request) error {
	seen := map[string]bool{}
	for c := range set.Children() {
		if c.Name.Space != NSRSM {
			continue
		}
		if seen[c.Name.Local] {
			return badRequest("<%s/> appears twice in <set/>", c.Name.Local)
		}
		seen[c.Name.Local] = true
		v := strings.TrimSpace(c.Text())
		switch c.Name.Local {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return badRequest("<max/> must be a non-negative integer, not %q", v)
			}
			if n == 0 {
				r.countOnly = true
			} else {
				r.q.Max = n
			}
		case "after":
			if v == "" {
				return badRequest("<after/> needs an id")
			}
			id, err := parseID(v)
			if err != nil {
				return err
			}
			if r.q.AfterID == uuid.Nil || bytes.Compare(id[:], r.q.AfterID[:]) > 0 {
				r.q.AfterID = id
			}
		case "before":
			r.q.Last = true
			if v == "" {
				continue // the last page
			}
			id, err := parseID(v)
			if err != nil {
				return err
			}
			if r.q.BeforeID == uuid.Nil || bytes.Compare(id[:], r.q.BeforeID[:]) < 0 {
				r.q.BeforeID = id
			}
		case "index":
			// Jumping to an offset would need a count over the index
			// for every page; index 0 is the first page, which needs
			// nothing.
			if v != "0" {
				return stanza.Errorf(stanza.Cancel, stanza.FeatureNotImplemented, "paging by <index/> is not supported; page with <after/> and <before/>")
			}
		default:
			return badRequest("unknown element <%s/> in <set/>", c.Name.Local)
		}
	}
	return nil
}

// parseID parses an archive id. An id that is not even a UUID cannot be in
// the archive, so it gets the item-not-found of XEP-0313 rather than
// bad-request: ids are opaque to clients.
func parseID(v string) (uuid.UUID, error) {
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, stanza.Errorf(stanza.Cancel, stanza.ItemNotFound, "no archived message has id %q", v)
	}
	return id, nil
}

// parseDateTime parses the DateTime profile of XEP-0082:
// CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD being Z or ±hh:mm.
func parseDateTime(v string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, v)
}

// formatDateTime writes t in the XEP-0082 DateTime profile, UTC, to the
// millisecond (archive ids are time-ordered to the millisecond).
func formatDateTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// queryForm is the answer to a query get (XEP-0313, "Retrieving form fields"): the fields a
// query may use.
func queryForm() *stream.Element {
	x := stream.NewElement(NSData, "x", "type", "form")
	add(add(x, stream.NewElement(NSData, "field", "type", "hidden", "var", "FORM_TYPE")), stream.NewElement(NSData, "value")).AddText(NS)
	x.AddChild(stream.NewElement(NSData, "field", "type", "jid-single", "var", "with"))
	for _, v := range []string{"start", "end", "before-id", "after-id"} {
		x.AddChild(stream.NewElement(NSData, "field", "type", "text-single", "var", v))
	}
	ids := add(x, stream.NewElement(NSData, "field", "type", "list-multi", "var", "ids"))
	// XEP-0313: the list of ids is open; the server never lists them.
	add(ids, stream.NewElement(NSValidate, "validate", "datatype", "xs:string")).
		AddChild(stream.NewElement(NSValidate, "open"))
	return stream.NewElement(NS, "query").AddChild(x)
}

// add appends c to parent and returns c (AddChild returns the parent).
func add(parent, c *stream.Element) *stream.Element {
	parent.AddChild(c)
	return c
}

func badRequest(format string, args ...any) *stanza.Error {
	return stanza.Errorf(stanza.Modify, stanza.BadRequest, format, args...)
}
