package stream

import (
	"iter"
	"slices"
)

// Name is an expanded XML name: a namespace and a local name. Prefixes are
// resolved when reading and never stored.
type Name struct {
	Space, Local string
}

// Attr is an attribute. Unqualified attributes (the usual case: to, from,
// id, type) have an empty Space; xml:lang has Space NSXML. Namespace
// declarations are not attributes: the reader resolves them into Spaces.
type Attr struct {
	Name  Name
	Value string
}

// Node is one child of an Element: an element when Elem is non-nil,
// character data otherwise.
type Node struct {
	Elem *Element
	Text string
}

// Element is a parsed XML element. The reader never stores empty or
// adjacent text nodes, so two elements read from equivalent XML are Equal.
//
// Elements read from a stream keep the namespace they were read in
// (jabber:client or jabber:server for stanzas); AppendStanza requalifies
// them for the stream they are written to.
type Element struct {
	Name  Name
	Attrs []Attr
	Nodes []Node
}

// NewElement returns an element with the given name and unqualified
// attributes given as name, value pairs; an odd trailing name is ignored.
func NewElement(space, local string, attrs ...string) *Element {
	e := &Element{Name: Name{space, local}}
	if len(attrs) > 1 {
		e.Attrs = make([]Attr, 0, len(attrs)/2)
		for i := 0; i+1 < len(attrs); i += 2 {
			e.Attrs = append(e.Attrs, Attr{Name{Local: attrs[i]}, attrs[i+1]})
		}
	}
	return e
}

// Attr returns the value of the unqualified attribute local, or "".
func (e *Element) Attr(local string) string {
	return e.AttrNS("", local)
}

// AttrNS returns the value of the attribute {space}local, or "".
func (e *Element) AttrNS(space, local string) string {
	for i := range e.Attrs {
		if e.Attrs[i].Name.Local == local && e.Attrs[i].Name.Space == space {
			return e.Attrs[i].Value
		}
	}
	return ""
}

// Lang returns the element's own xml:lang attribute.
func (e *Element) Lang() string { return e.AttrNS(NSXML, "lang") }

// SetAttr sets the unqualified attribute local, replacing any value it had.
// An empty value removes the attribute, which is what stamping code wants
// for from/to.
func (e *Element) SetAttr(local, value string) {
	for i := range e.Attrs {
		if e.Attrs[i].Name.Local == local && e.Attrs[i].Name.Space == "" {
			if value == "" {
				e.Attrs = slices.Delete(e.Attrs, i, i+1)
			} else {
				e.Attrs[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.Attrs = append(e.Attrs, Attr{Name{Local: local}, value})
	}
}

// Child returns the first child element named {space}local, or nil. An
// empty space means the element's own namespace, which is how the content
// children of a stanza (<body/>, <subject/>, <error/>) are found whatever
// stream the stanza came from.
func (e *Element) Child(local, space string) *Element {
	if space == "" {
		space = e.Name.Space
	}
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Name.Local == local && n.Elem.Name.Space == space {
			return n.Elem
		}
	}
	return nil
}

// Children yields the child elements in document order.
func (e *Element) Children() iter.Seq[*Element] {
	return func(yield func(*Element) bool) {
		for _, n := range e.Nodes {
			if n.Elem != nil && !yield(n.Elem) {
				return
			}
		}
	}
}

// Text returns the character data directly inside e (not inside its
// children), concatenated.
func (e *Element) Text() string {
	var first string
	var buf []byte
	count := 0
	for _, n := range e.Nodes {
		if n.Elem != nil {
			continue
		}
		switch count {
		case 0:
			first = n.Text
		case 1:
			buf = append([]byte(first), n.Text...)
		default:
			buf = append(buf, n.Text...)
		}
		count++
	}
	if count > 1 {
		return string(buf)
	}
	return first
}

// AddChild appends c as the last child and returns e.
func (e *Element) AddChild(c *Element) *Element {
	e.Nodes = append(e.Nodes, Node{Elem: c})
	return e
}

// AddText appends character data, merging it with a preceding text node,
// and returns e.
func (e *Element) AddText(s string) *Element {
	if s == "" {
		return e
	}
	if n := len(e.Nodes); n > 0 && e.Nodes[n-1].Elem == nil {
		e.Nodes[n-1].Text += s
		return e
	}
	e.Nodes = append(e.Nodes, Node{Text: s})
	return e
}

// Clone returns a deep copy, for code that stamps or strips a stanza while
// another handler still holds the original.
func (e *Element) Clone() *Element {
	c := &Element{Name: e.Name, Attrs: slices.Clone(e.Attrs)}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.Elem != nil {
				c.Nodes[i].Elem = n.Elem.Clone()
			} else {
				c.Nodes[i].Text = n.Text
			}
		}
	}
	return c
}

// Equal reports whether e and o have the same names, attributes (in order)
// and children.
func (e *Element) Equal(o *Element) bool {
	if e == nil || o == nil {
		return e == o
	}
	if e.Name != o.Name || !slices.Equal(e.Attrs, o.Attrs) || len(e.Nodes) != len(o.Nodes) {
		return false
	}
	for i := range e.Nodes {
		a, b := e.Nodes[i], o.Nodes[i]
		if (a.Elem == nil) != (b.Elem == nil) || a.Text != b.Text {
			return false
		}
		if a.Elem != nil && !a.Elem.Equal(b.Elem) {
			return false
		}
	}
	return true
}
