package userdata

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"verlauf.im/verlauf/xmppfront/stream"
)

// FileError is a refusal of an import file: what was wrong, in which
// element, at which line. errors.Is(err, ErrMalformed) holds.
type FileError struct {
	// File is the file's name as the caller or an <xi:include> gave it
	// ("" for the top-level reader).
	File string
	// Element is the element at fault, as {namespace}local or local.
	Element string
	// Line is the line at which the fault was found (1-based).
	Line int
	Err  error
}

func (e *FileError) Error() string {
	where := fmt.Sprintf("line %d", e.Line)
	if e.File != "" {
		where = e.File + ":" + where
	}
	if e.Element != "" {
		return fmt.Sprintf("userdata: %s: <%s>: %v", where, e.Element, e.Err)
	}
	return fmt.Sprintf("userdata: %s: %v", where, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrMalformed) hold.
func (e *FileError) Is(target error) bool { return target == ErrMalformed }

var errTooLarge = errors.New("element too large")

// limitReader refuses to read past limit, so that a hostile element (a
// 2 GB text node) costs at most the limit in memory: encoding/xml would
// buffer a whole token otherwise.
type limitReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, errTooLarge
	}
	if rest := l.limit - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// readAhead is what encoding/xml's bufio may have read beyond the token it
// is on; limits allow for it.
const readAhead = 4096

// xreader is the restricted XML reader of import files: encoding/xml in
// strict mode with no entity map (undefined entities are errors and
// nothing is expanded), DTDs refused, processing instructions refused but
// for the XML declaration, comments ignored, limits on token and element
// size, depth and attributes.
type xreader struct {
	file  string
	d     *xml.Decoder
	src   *limitReader
	lim   Limits
	stack []string
	// unit is the offset past which the element being captured is too
	// large; 0 outside a capture.
	unit    int64
	started bool
	sawDecl bool
}

func newXReader(file string, r io.Reader, lim Limits) *xreader {
	src := &limitReader{r: r}
	d := xml.NewDecoder(src)
	d.Strict = true
	d.Entity = nil
	// CharsetReader stays nil: only UTF-8 (and its ASCII subset) is read.
	return &xreader{file: file, d: d, src: src, lim: lim}
}

func nameOf(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

func (x *xreader) line() int {
	l, _ := x.d.InputPos()
	return l
}

// fail makes a FileError at the current element.
func (x *xreader) fail(err error) error {
	el := ""
	if len(x.stack) > 0 {
		el = x.stack[len(x.stack)-1]
	}
	return &FileError{File: x.file, Element: el, Line: x.line(), Err: err}
}

func (x *xreader) failf(format string, args ...any) error {
	return x.fail(fmt.Errorf(format, args...))
}

// token returns the next start, end or character data token, enforcing
// the rules; character data is copied.
func (x *xreader) token() (xml.Token, error) {
	for {
		if x.unit > 0 {
			x.src.limit = x.unit + readAhead
		} else {
			x.src.limit = x.d.InputOffset() + int64(x.lim.MaxElementBytes) + readAhead
		}
		t, err := x.d.Token()
		switch {
		case errors.Is(err, errTooLarge):
			max := x.lim.MaxElementBytes
			if x.unit > 0 {
				return nil, x.failf("%w (in an element over its limit)", errTooLarge)
			}
			return nil, x.failf("%w: a token over %d bytes", errTooLarge, max)
		case err == io.EOF:
			if len(x.stack) > 0 || !x.started {
				return nil, x.failf("unexpected end of file")
			}
			return nil, io.EOF
		case err != nil:
			return nil, x.fail(fmt.Errorf("not well-formed: %w", err))
		}
		switch t := t.(type) {
		case xml.StartElement:
			x.started = true
			x.stack = append(x.stack, nameOf(t.Name))
			if len(x.stack) > x.lim.MaxDepth {
				return nil, x.failf("nested deeper than %d", x.lim.MaxDepth)
			}
			if len(t.Attr) > x.lim.MaxAttrs {
				return nil, x.failf("more than %d attributes", x.lim.MaxAttrs)
			}
			return t, nil
		case xml.EndElement:
			tok := xml.EndElement{Name: t.Name}
			// encoding/xml has checked that it matches; pop after the
			// caller had a chance to name it in an error.
			x.stack = x.stack[:len(x.stack)-1]
			return tok, nil
		case xml.CharData:
			return xml.CharData(strings.Clone(string(t))), nil
		case xml.Comment:
			continue
		case xml.ProcInst:
			if t.Target == "xml" && !x.started && !x.sawDecl {
				x.sawDecl = true
				continue
			}
			return nil, x.failf("processing instruction <?%s?> not allowed", t.Target)
		case xml.Directive:
			return nil, x.failf("DTDs and other <!…> declarations are not allowed")
		default:
			return nil, x.failf("unexpected token %T", t)
		}
	}
}

// space reports whether character data is only XML whitespace.
func space(c xml.CharData) bool {
	return strings.Trim(string(c), " \t\r\n") == ""
}

// capture reads the element that start opened into a tree, bounded to max
// bytes from its start tag.
func (x *xreader) capture(start xml.StartElement, max int) (*stream.Element, error) {
	outer := x.unit
	x.unit = x.d.InputOffset() + int64(max)
	defer func() { x.unit = outer }()
	if outer > 0 && outer < x.unit {
		x.unit = outer
	}
	root := toElement(start)
	path := []*stream.Element{root}
	for len(path) > 0 {
		t, err := x.token()
		if err != nil {
			return nil, err
		}
		cur := path[len(path)-1]
		switch t := t.(type) {
		case xml.StartElement:
			c := toElement(t)
			cur.AddChild(c)
			path = append(path, c)
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.CharData:
			cur.AddText(string(t))
		}
	}
	return root, nil
}

// skip reads past the element that start opened.
func (x *xreader) skip() error {
	depth := 1
	for depth > 0 {
		t, err := x.token()
		if err != nil {
			return err
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// toElement converts a start tag; namespace declarations are not kept
// (stream.Element resolves names), xml:* attributes keep their namespace.
func toElement(t xml.StartElement) *stream.Element {
	e := &stream.Element{Name: stream.Name{Space: t.Name.Space, Local: t.Name.Local}}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		space := a.Name.Space
		if space == "xml" {
			space = stream.NSXML
		}
		e.Attrs = append(e.Attrs, stream.Attr{Name: stream.Name{Space: space, Local: a.Name.Local}, Value: a.Value})
	}
	return e
}

func attr(t xml.StartElement, local string) (string, bool) {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}
